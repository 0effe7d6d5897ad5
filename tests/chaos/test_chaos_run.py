"""`agentha chaos run` end to end: fleetsim agents behind a real HAProxy, a real monitor, Locust.

What a release engineer relies on: a stopped agent behind health-checked HAProxy passes (and
the monitor shows the run, its phase and its fault live, in its API, metrics and events) and
the same run without health checks fails with the failing window named; a drain-first
rolling restart loses no request; Ctrl-C reverts every fault within 2 seconds; after SIGKILL
`agentha chaos recover` reverts what the journal holds; the guard refuses to take a group's
last healthy agent; --dry-run touches nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from chaos_stack import Stack, chaos_stack
from junitparser import JUnitXml
from load_helpers import agentha

from monitor.client import MonitorClient

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


def _chaos_runs(stack: Stack) -> dict[str, dict]:
    status, body = stack.monitor.get("/api/v1/chaos/runs")
    assert status == 200, body
    return {run["run"]: run for run in json.loads(body)["runs"]}


def _run_watched(
    stack: Stack, experiment: Path, out: Path
) -> tuple[subprocess.CompletedProcess, list[dict[str, dict]], list[str]]:
    """The run, with the monitor's chaos runs read as it goes, and /metrics whenever one of
    them holds a fault."""
    seen: list[dict[str, dict]] = []
    metrics: list[str] = []
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(_run, stack, experiment, out)
        while not running.done():
            seen.append(_chaos_runs(stack))
            if any(run["faults"] for run in seen[-1].values()):
                metrics.append(stack.monitor.get("/metrics")[1])
            time.sleep(0.1)
        return running.result(), seen, metrics


async def _chaos_events(url: str, run_id: str) -> list[tuple[str, str, str, str]]:
    """The monitor's chaos and fault events of one run, from the first to its end."""
    found = []
    async with asyncio.timeout(10), MonitorClient(url) as client:
        async for event in client.events(after=0):
            ours = event["id"] == run_id or event["reason"] == f"chaos run {run_id}"
            if event["kind"] in ("chaos", "fault") and ours:
                found.append((event["kind"], event["id"], event["old"], event["new"]))
                if event["kind"] == "chaos" and event["new"] == "done":
                    return found
    raise AssertionError("unreachable")


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
    done, seen, metrics = _run_watched(settled, experiment, out)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "result: pass (exit 0)" in done.stdout
    record = _record(out)
    assert record["verdict"] == "pass" and record["exit_code"] == 0
    # The monitor showed the run live: its phases, and the fault on orders-2 while held.
    run_id = record["run_id"]
    assert done.stdout.count(f"run {run_id}: reported to the monitor") == 1
    live = [views[run_id] for views in seen if run_id in views]
    phases = list(dict.fromkeys(run["phase"] for run in live))
    assert {"warmup", "baseline", "fault", "recovery"} <= set(phases), phases
    held = [run for run in live if run["faults"]]
    assert held and all(run["phase"] == "fault" for run in held)
    assert {(f["agent"], tuple(f["actions"])) for run in held for f in run["faults"]} == {
        ("stage/orders/orders-2", ("stop",))
    }
    assert any(
        line.startswith("agentha_chaos_fault_active{")
        and 'agent="orders-2"' in line and 'action="stop"' in line and line.endswith(" 1.0")
        for text in metrics for line in text.splitlines()
    )  # fmt: skip
    ended = _chaos_runs(settled)[run_id]
    assert (ended["phase"], ended["verdict"], ended["faults"]) == ("done", "pass", [])
    assert ended["experiment"] == "stop-one" and ended["group"] == "stage/orders"
    # The events, in order (a revert and the next phase may reach the monitor as one report).
    events = asyncio.run(_chaos_events(settled.monitor.url, run_id))
    assert [e[2:] for e in events if e[0] == "chaos"] == [
        ("none", "preflight"), ("preflight", "warmup"), ("warmup", "baseline"),
        ("baseline", "fault"), ("fault", "recovery"), ("recovery", "done"),
    ]  # fmt: skip
    assert [e[1:] for e in events if e[0] == "fault"] == [
        ("stage/orders/orders-2", "none", "stop"), ("stage/orders/orders-2", "stop", "none"),
    ]  # fmt: skip
    assert events.index(("chaos", run_id, "baseline", "fault")) < events.index(
        ("fault", "stage/orders/orders-2", "none", "stop")
    )
    assert not any("monitor" in note for note in record["notes"])
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
    ended = _chaos_runs(settled)[record["run_id"]]
    assert (ended["phase"], ended["verdict"], ended["faults"]) == ("done", "aborted", [])
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
    run_id = _record(out)["run_id"]
    assert _chaos_runs(settled)[run_id]["ended"] is None  # still running, then lost
    # No argument: the run is found through its active pointer.
    done = agentha("chaos", "recover", env=settled.env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 reverted, 0 failed" in done.stdout
    assert _stopped(settled) == dict.fromkeys(ORDERS, False)  # long before the TTLs
    # The monitor is told the run ended, so it does not stay lost with its faults shown.
    assert f"monitor: run {run_id} reported ended (aborted)" in done.stdout
    ended = _chaos_runs(settled)[run_id]
    assert (ended["phase"], ended["verdict"], ended["faults"]) == ("done", "aborted", [])
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
    runs_before = _chaos_runs(settled)
    out = tmp_path / "run"
    done = _run(settled, experiment, out, "--dry-run")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "step 1: stop stage/orders/orders-2 (fleetsim) for 5 s" in done.stdout
    assert "guard: allowed: step 1: stop on orders-2: 2 of 3 agents left" in done.stdout
    assert "dry run: nothing was changed" in done.stdout
    assert {a: settled.conditions(a) for a in ORDERS} == before
    assert not out.exists()
    assert _chaos_runs(settled).keys() == runs_before.keys()  # nothing reported


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
