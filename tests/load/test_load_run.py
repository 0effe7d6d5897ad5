"""`agentha load run` and Locust itself against the simulated fleet, through its gateway.

Each run is a few seconds of real Locust load (real TLS, API keys and OAuth2 tokens) on the
session's demo fleet; the timeline's totals are checked against Locust's own final counts.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from load_helpers import agentha, free_port, locust_totals, timeline_totals

from loadtests.run import LOCUSTFILE

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

SHORT = ("--shape", "steady:users=6,ramp=1s", "--duration", "4s", "--window", "2")
ENDPOINTS = {"list-orders", "get-order", "create-order", "oauth2-token"}


def _run(fleet, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return agentha(
        "load", "run", "-c", str(fleet.directory / "inventory.yaml"), "--group", "test/orders",
        *SHORT, "--out", str(out), *extra, env=fleet.secrets,
    )  # fmt: skip


def test_a_healthy_group_passes_and_the_timeline_equals_locust(fleet, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = _run(fleet, out, "--threshold", "success>=99.9%", "--threshold", "p95<5s")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS success>=99.9% in all" in result.stdout
    assert "result: passed (exit 0)" in result.stdout
    ours = timeline_totals(out / "timeline.jsonl")
    assert ours == locust_totals(out / "locust_totals.json")
    assert set(ours) == ENDPOINTS | {"Aggregated"}
    assert ours["Aggregated"][0] >= 10 and ours["Aggregated"][1] == 0
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["passed"] and verdict["exit_code"] == 0
    # No secret reaches the files a run leaves behind.
    written = "".join(p.read_text(errors="replace") for p in out.iterdir())
    for value in fleet.secrets.values():
        assert value not in written


def test_an_erroring_agent_fails_the_window_it_is_in(fleet, tmp_path: Path) -> None:
    fleet.set("test/orders/orders-1", error_rate=1.0)
    out = tmp_path / "run"
    # Two worker processes under one master: the master writes the one merged timeline.
    result = _run(fleet, out, "--threshold", "success>=99.9%", "--processes", "2")
    assert result.returncode == 1, result.stdout + result.stderr
    failed = re.findall(r"^FAIL success>=99\.9% in window (\d+) \((\d+)-(\d+) s, .*\): (.*)$",
                        result.stdout, re.MULTILINE)  # fmt: skip
    assert failed, result.stdout
    assert all("failed)" in observed for *_, observed in failed)
    assert "result: thresholds failed (exit 1)" in result.stdout
    assert timeline_totals(out / "timeline.jsonl") == locust_totals(out / "locust_totals.json")
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["thresholds"][0]["failed_windows"][0]["window"] == int(failed[0][0])


def test_master_and_two_workers_write_one_merged_timeline(fleet, tmp_path: Path) -> None:
    port = free_port()
    locust = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--loglevel", "WARNING"]
    env = {**os.environ, **fleet.secrets}
    worker_args = [*locust, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
    workers = [
        subprocess.Popen(worker_args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    try:
        master = subprocess.run(
            [*locust, "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port",
             str(port), "--expect-workers", "2", "--headless", "--only-summary",
             "--inventory", str(fleet.directory / "inventory.yaml"), "--group", "test/orders",
             "--shape", "steady:users=6,ramp=1s,duration=4s", "--pacing", "0.5",
             "--timeline", str(tmp_path / "timeline.jsonl"),
             "--totals", str(tmp_path / "locust_totals.json")],
            env=env, capture_output=True, text=True, timeout=45,
        )  # fmt: skip
        assert master.returncode == 0, master.stderr
        for worker in workers:
            worker.wait(timeout=15)  # the master tells them to quit
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    ours = timeline_totals(tmp_path / "timeline.jsonl")
    assert ours == locust_totals(tmp_path / "locust_totals.json")
    assert ours["Aggregated"][0] >= 10 and ours["Aggregated"][1] == 0
    lines = (tmp_path / "timeline.jsonl").read_text().splitlines()
    assert [json.loads(line)["elapsed"] for line in lines][:3] == [0, 1, 2]  # one per second


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--group", "test/nope"), "no group 'test/nope'; expected one of test/orders"),
        (("--group", "test/orders", "--shape", "ramp"), "unknown shape 'ramp'"),
        (("--group", "test/orders", "--threshold", "p95<3%"), "threshold 'p95<3%'"),
        (("--group", "test/orders", "--threshold", "nope:p95<3s"), "has no endpoint 'nope'"),
        ((), "several groups have api_checks; choose one with --group"),
    ],
)
def test_could_not_run_is_exit_2_with_one_line(
    fleet, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    result = agentha(
        "load", "run", "-c", str(fleet.directory / "inventory.yaml"), *args,
        "--out", str(tmp_path / "run"), env=fleet.secrets,
    )  # fmt: skip
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_load_check_judges_a_saved_timeline(fleet, tmp_path: Path) -> None:
    path = tmp_path / "timeline.jsonl"
    line = {"t": 1000, "elapsed": 0, "users": 2, "endpoints": {
        "a": {"ok": 9, "fail": 1, "latency_hist": {"5": 10}}}}  # fmt: skip
    path.write_text(json.dumps(line) + "\n")
    passed = agentha("load", "check", str(path), "--threshold", "success>=90%")
    assert passed.returncode == 0 and "PASS success>=90%" in passed.stdout
    failed = agentha("load", "check", str(path), "--threshold", "success>=95%")
    assert failed.returncode == 1
    assert "FAIL success>=95% in window 1 (0-1 s" in failed.stdout
    missing = agentha("load", "check", str(tmp_path / "none.jsonl"))
    assert missing.returncode == 2 and "cannot read the timeline" in missing.stderr


def test_the_locust_process_imports_no_asyncio_code(tmp_path: Path) -> None:
    """gevent and asyncio must not share a process: only monitor's pure inventory modules."""
    probe = (
        "import json, sys, locust, loadtests.locustfile\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('monitor', 'fleetsim', 'chaos', 'tui', 'agentha'))))\n"
        "print('asyncio' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=30
    )
    modules, asyncio_loaded = result.stdout.splitlines()
    allowed = {
        "monitor", "monitor.errors", "monitor.inventory", "monitor.inventory_file",
        "monitor.inventory_rules", "monitor.payloads", "monitor.problems", "monitor.secrets",
        "monitor.yamlpos",
    }  # fmt: skip
    assert set(json.loads(modules)) <= allowed
    assert asyncio_loaded == "False"
