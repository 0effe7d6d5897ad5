"""`agentha chaos run` end to end: fleetsim agents behind a real HAProxy, a real monitor, Locust.

What a release engineer relies on: a stopped agent behind health-checked HAProxy passes and
the same run without health checks fails with the failing window named; a drain-first
rolling restart loses no request; Ctrl-C reverts every fault within 2 seconds; after SIGKILL
`agentha chaos recover` reverts what the journal holds; the guard refuses to take a group's
last healthy agent; --dry-run touches nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from chaos_stack import Stack, chaos_stack
from junitparser import JUnitXml
from load_helpers import agentha

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

ORDERS = [f"stage/orders/orders-{n}" for n in (1, 2, 3)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with chaos_stack(tmp_path_factory.mktemp("chaos")) as stack:
        yield stack


@pytest.fixture
def settled(stack: Stack) -> Stack:
    stack.fleet.reset()
    stack.wait_settled()
    return stack


def _run(stack: Stack, experiment: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    return agentha(
        "chaos", "run", str(experiment), "--out", str(out), *args, env=stack.env, timeout=150
    )


def _record(out: Path) -> dict:
    return json.loads((out / "run.json").read_text())


def _stopped(stack: Stack) -> dict[str, bool]:
    return {a: stack.conditions(a)["stopped"] for a in ORDERS}


def test_stopping_one_agent_behind_health_checked_haproxy_passes(settled: Stack, tmp_path) -> None:
    experiment = settled.experiment(
        "stop-one",
        hypothesis={
            "window": "2s",
            "thresholds": ["success>=99%"],
            "max_detection": "3s",
            "max_recovery": "10s",
        },
    )
    out = tmp_path / "run"
    done = _run(settled, experiment, out)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "result: pass (exit 0)" in done.stdout
    record = _record(out)
    assert record["verdict"] == "pass" and record["exit_code"] == 0
    assert [p["name"] for p in record["phases"]] == [
        "preflight", "warmup", "baseline", "fault", "recovery",
    ]  # fmt: skip
    (fault,) = record["faults"]
    assert fault["agent"] == "stage/orders/orders-2" and fault["action"] == "stop"
    assert 0 < fault["detection_s"] <= 3
    assert fault["recovery_s"] is not None and fault["recovery_s"] <= 10
    assert fault["failover_s"] is not None
    # The monitor saw the agent leave and come back, and the load kept flowing.
    changes = [(s["subject"], s["new"]) for s in record["states"]]
    assert ("stage/orders/orders-2", "down") in changes
    assert ("stage/orders/orders-2", "up") in changes
    fault_stats = next(s for s in record["stats"] if s["phase"] == "fault")
    assert fault_stats["requests"] >= 50 and fault_stats["success_ratio"] >= 0.99
    assert _stopped(settled) == dict.fromkeys(ORDERS, False)  # reverted
    # The reports: JUnit read back by a JUnit parser, the HTML with its chart and verdict.
    suite = next(iter(JUnitXml.fromfile(str(out / "junit.xml"))))
    cases = list(suite)
    assert len(cases) == len(record["checks"]) >= 5
    assert all(case.is_passed for case in cases)
    html = (out / "report.html").read_text()
    assert "<svg" in html and "pass" in html.lower()
    journal = (out / "journal.jsonl").read_text().splitlines()
    assert [json.loads(line)["op"] for line in journal] == ["inject", "injected", "revert"]
    assert not list((settled.directory / "state" / "active").glob("*.run"))


def test_drain_first_rolling_restart_loses_no_request(settled: Stack, tmp_path) -> None:
    experiment = settled.experiment(
        "rolling",
        hypothesis={"window": "2s", "thresholds": ["success>=100%"]},
        timings={"warmup": "2s", "baseline": "2s", "recovery": "2s"},
        method=[{"rolling_restart": {"drain_first": True, "drain": "2s", "hold": "1s",
                                     "settle": "15s"}}],
    )  # fmt: skip
    out = tmp_path / "run"
    done = _run(settled, experiment, out)
    assert done.returncode == 0, done.stdout + done.stderr
    record = _record(out)
    restarted = [f["agent"] for f in record["faults"] if f["action"] == "stop"]
    assert restarted == ORDERS  # one at a time, every agent
    assert [f["action"] for f in record["faults"]].count("pause") == 3
    total = sum(s["requests"] for s in record["timeline"])
    failed = sum(s["fail"] for s in record["timeline"])
    assert total >= 100 and failed == 0
    assert _stopped(settled) == dict.fromkeys(ORDERS, False)


def _start(stack: Stack, experiment: Path, out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "agentha", "chaos", "run", str(experiment), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **stack.env},
    )


def _wait_injected(out: Path, count: int, proc: subprocess.Popen[str], within: float = 60) -> None:
    deadline = time.monotonic() + within
    journal = out / "journal.jsonl"
    while time.monotonic() < deadline:
        if journal.exists():
            ops = [json.loads(line)["op"] for line in journal.read_text().splitlines() if line]
            if ops.count("injected") >= count:
                return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("the faults were not injected in time")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_reverts_every_fault_within_two_seconds(settled: Stack, tmp_path, signum) -> None:
    experiment = settled.experiment(
        "interrupted",
        method=[{"fault": {"action": "stop", "targets": ["orders-1", "orders-3"],
                           "duration": "60s"}}],
        guards={"allow_outage": True, "abort_success_below": None},
    )  # fmt: skip
    out = tmp_path / "run"
    proc = _start(settled, experiment, out)
    try:
        _wait_injected(out, 2, proc)
        assert _stopped(settled) == {ORDERS[0]: True, ORDERS[1]: False, ORDERS[2]: True}
        sent = time.monotonic()
        proc.send_signal(signum)
        time.sleep(0.05)
        proc.send_signal(signum)  # impatient: a second signal must not cut the rollback short
        while any(_stopped(settled).values()):
            assert time.monotonic() - sent <= 2.0, "faults still applied 2 s after the signal"
            time.sleep(0.05)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stdout + stderr
    record = _record(out)
    assert record["verdict"] == "aborted" and signal.Signals(signum).name in record["reason"]
    assert all(f["reverted_at"] is not None for f in record["faults"])
    assert (out / "junit.xml").exists() and (out / "report.html").exists()


def test_recover_reverts_what_a_killed_run_left_applied(settled: Stack, tmp_path) -> None:
    experiment = settled.experiment(
        "killed",
        method=[{"fault": {"action": "stop", "targets": ["orders-1", "orders-2"],
                           "duration": "60s", "ttl": "120s"}}],
        guards={"allow_outage": True, "abort_success_below": None},
    )  # fmt: skip
    out = tmp_path / "run"
    proc = _start(settled, experiment, out)
    try:
        _wait_injected(out, 2, proc)
    finally:
        proc.kill()  # SIGKILL: no rollback can run
        proc.communicate(timeout=30)
    # Locust ran in its own session: it goes when its parent dies, not with the terminal.
    deadline = time.monotonic() + 20
    while _locust_running(out):
        assert time.monotonic() < deadline, "Locust outlived the killed run"
        time.sleep(0.2)
    assert _stopped(settled) == {ORDERS[0]: True, ORDERS[1]: True, ORDERS[2]: False}
    # No argument: the run is found through its active pointer.
    done = agentha("chaos", "recover", env=settled.env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 reverted, 0 failed" in done.stdout
    assert _stopped(settled) == dict.fromkeys(ORDERS, False)  # long before the TTLs
    again = agentha("chaos", "recover", env=settled.env)
    assert again.returncode == 0 and "no run left faults applied" in again.stdout


def _locust_running(out: Path) -> bool:
    found = subprocess.run(["pgrep", "-f", str(out / "load")], capture_output=True, check=False)
    return found.returncode == 0


def test_guard_refuses_the_last_healthy_agent(settled: Stack, tmp_path) -> None:
    # stage/pair has min_healthy 1: with pair-1 paused, pair-2 is the last one.
    settled.fleet.set("stage/pair/pair-1", paused=True)
    deadline = time.monotonic() + 15
    while settled.monitor.snapshot()["agents"]["stage/pair/pair-1"]["state"] != "paused":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    experiment = settled.experiment(
        "guarded",
        group="stage/pair",
        method=[{"fault": {"action": "stop", "targets": ["pair-2"], "duration": "5s"}}],
    )
    dry = agentha("chaos", "run", str(experiment), "--dry-run", env=settled.env)
    assert dry.returncode == 2, dry.stdout + dry.stderr
    assert "refused: step 1: stop on pair-2: 0 of 2 agents left" in dry.stdout
    out = tmp_path / "run"
    done = _run(settled, experiment, out)
    assert done.returncode == 2, done.stdout + done.stderr
    record = _record(out)
    assert record["verdict"] == "aborted" and "refused" in record["reason"]
    assert record["faults"] == []
    assert settled.conditions("stage/pair/pair-2")["stopped"] is False


def test_dry_run_prints_the_plan_and_changes_nothing(settled: Stack, tmp_path) -> None:
    experiment = settled.experiment("dry")
    before = {a: settled.conditions(a) for a in ORDERS}
    out = tmp_path / "run"
    done = _run(settled, experiment, out, "--dry-run")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "step 1: stop stage/orders/orders-2 (fleetsim) for 5 s" in done.stdout
    assert "guard: allowed: step 1: stop on orders-2: 2 of 3 agents left" in done.stdout
    assert "dry run: nothing was changed" in done.stdout
    assert {a: settled.conditions(a) for a in ORDERS} == before
    assert not out.exists()


def test_an_abort_condition_reverts_at_once(settled: Stack, tmp_path) -> None:
    # Every agent answers 500: clients fail whatever HAProxy does, and the run must stop.
    experiment = settled.experiment(
        "abort",
        method=[{"fault": {"action": "errors", "params": {"rate": 1.0}, "targets": "all",
                           "duration": "60s"}}],
        guards={"allow_outage": True, "abort_success_below": 0.5, "abort_over": "2s"},
    )  # fmt: skip
    out = tmp_path / "run"
    started = time.monotonic()
    done = _run(settled, experiment, out)
    assert done.returncode == 2, done.stdout + done.stderr
    assert time.monotonic() - started < 40  # long before the 60 s fault would end
    record = _record(out)
    assert record["verdict"] == "aborted" and "success ratio" in record["reason"]
    assert "abort: success ratio" in done.stdout
    assert all(f["reverted_at"] is not None for f in record["faults"])
    assert all(settled.conditions(a)["error_rate"] == 0 for a in ORDERS)
