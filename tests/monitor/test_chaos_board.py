"""Chaos runs reported to the monitor: the board, its events, its metrics and its API."""

from __future__ import annotations

import contextlib

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from monitor.api import _loopback, create_app
from monitor.chaos_board import MAX_RUNS, ChaosBoard, ChaosReportError
from monitor.client import MonitorClient, MonitorClientError
from monitor.collector import ChaosCollector
from monitor.events import EventLog
from monitor.state import GroupSpec, StateStore

pytestmark = pytest.mark.timeout(20)
A1, A2 = "test/orders/a1", "test/orders/a2"
AGENTS = frozenset({A1, A2})


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def report(phase: str, *faults: tuple[str, str], verdict: str | None = None) -> dict:
    return {
        "experiment": "stop-one-agent",
        "title": "Stop one agent",
        "group": "test/orders",
        "phase": phase,
        "started": 990.0,
        "verdict": verdict,
        "faults": [{"agent": agent, "action": action} for agent, action in faults],
    }


def board(clock: Clock | None = None) -> ChaosBoard:
    return ChaosBoard(EventLog(), lambda: AGENTS, clock=clock or Clock())


def events(b: ChaosBoard) -> list[tuple[str, str, str, str]]:
    return [(e.kind, e.id, e.old, e.new) for e in b.events.since(0)]


def test_a_run_becomes_events_for_its_phases_and_faults() -> None:
    b = board()
    b.report("r1", report("baseline"))
    b.report("r1", report("fault", (A1, "stop")))
    b.report("r1", report("fault", (A1, "stop"), (A1, "slow")))
    b.report("r1", report("recovery"))  # the revert and the phase change in one report
    b.report("r1", report("done", verdict="pass"))
    assert events(b) == [
        ("chaos", "r1", "none", "baseline"),
        ("chaos", "r1", "baseline", "fault"),
        ("fault", A1, "none", "stop"),
        ("fault", A1, "stop", "slow+stop"),
        ("fault", A1, "slow+stop", "none"),  # reverted, then the next phase
        ("chaos", "r1", "fault", "recovery"),
        ("chaos", "r1", "recovery", "done"),
    ]
    assert b.events.since(0)[-1].reason == "stop-one-agent on test/orders: pass"
    assert b.finished["pass"] == 1
    run = b.snapshot()["runs"][0]
    assert (run["phase"], run["verdict"], run["faults"]) == ("done", "pass", [])
    with pytest.raises(ChaosReportError, match="already ended"):
        b.report("r1", report("fault"))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "report: expected a JSON object"),
        ({**report("fault"), "extra": 1}, "unknown field 'extra'"),
        ({**report("fault"), "experiment": "bad name!"}, "experiment: expected"),
        ({**report("fault"), "group": "orders"}, "group: expected ENV/GROUP"),
        ({**report("fault"), "phase": "chaos"}, "phase: expected one of"),
        ({**report("fault"), "started": "yesterday"}, "started: expected a UNIX time"),
        ({**report("fault"), "started": float("nan")}, "started: expected a UNIX time"),
        (report("fault", verdict="pass"), "verdict: only with phase done"),
        (report("done", verdict="maybe"), "verdict: expected one of"),
        (report("fault", ("test/orders/zz", "stop")), r"faults\[0\].agent: not an agent"),
        (report("fault", (A1, "Stop It")), r"faults\[0\].action: expected"),
        ({**report("fault"), "faults": [{"agent": A1}]}, r"faults\[0\]: expected"),
        ({**report("fault"), "faults": {}}, "faults: expected a list"),
    ],
)
def test_a_bad_report_is_refused_naming_the_field_and_changes_nothing(
    body: object, message: str
) -> None:
    b = board()
    with pytest.raises(ChaosReportError, match=message):
        b.report("r1", body)
    assert b.runs == {}
    assert events(b) == []


def test_a_bad_run_id_is_refused() -> None:
    with pytest.raises(ChaosReportError, match="run id"):
        board().report("../etc", report("fault"))


def test_a_run_that_stops_reporting_is_lost_and_keeps_its_faults() -> None:
    clock = Clock()
    b = board(clock)
    b.report("r1", report("fault", (A2, "hang")))
    clock.now += b.stale_after - 1
    b.sweep()
    assert b.runs["r1"].phase == "fault"
    clock.now += 2
    b.sweep()
    assert b.runs["r1"].phase == "lost"
    assert b.runs["r1"].faults == {A2: ("hang",)}  # a crashed run leaves them applied
    assert b.finished["lost"] == 1
    assert events(b)[-1] == ("chaos", "r1", "fault", "lost")
    clock.now += b.forget_after
    b.sweep()
    assert b.runs == {}
    assert events(b)[-1] == ("fault", A2, "hang", "none")


def test_a_lost_run_that_ends_later_counts_once() -> None:
    clock = Clock()
    b = board(clock)
    b.report("r1", report("fault", (A2, "hang")))
    clock.now += b.stale_after + 1
    b.sweep()
    b.report("r1", report("done", verdict="aborted"))  # what `agentha chaos recover` says
    assert b.runs["r1"].faults == {}
    assert events(b)[-2:] == [("fault", A2, "hang", "none"), ("chaos", "r1", "lost", "done")]
    assert sum(b.finished.values()) == 1 and b.finished["lost"] == 1


def test_the_board_holds_a_bounded_number_of_runs_dropping_ended_ones_first() -> None:
    clock = Clock()
    b = board(clock)
    b.report("active", report("fault"))
    for i in range(MAX_RUNS + 5):
        clock.now += 1
        b.report(f"r{i}", report("done", verdict="fail"))
    assert len(b.runs) == MAX_RUNS
    assert "active" in b.runs
    assert f"r{MAX_RUNS + 4}" in b.runs and "r0" not in b.runs


def test_the_collector_exports_active_runs_faults_and_ended_runs() -> None:
    b = board()
    b.report("r1", report("fault", (A1, "stop")))
    b.report("r2", report("done", verdict="fail"))
    registry = CollectorRegistry()
    registry.register(ChaosCollector(b))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()
        for s in family.samples
    }
    run = (
        "agentha_chaos_run_active",
        (
            ("environment", "test"),
            ("experiment", "stop-one-agent"),
            ("group", "orders"),
            ("phase", "fault"),
        ),
    )
    fault = (
        "agentha_chaos_fault_active",
        (("action", "stop"), ("agent", "a1"), ("environment", "test"), ("group", "orders")),
    )
    assert samples[run] == 1.0
    assert samples[fault] == 1.0
    assert samples[("agentha_chaos_runs_ended_total", (("verdict", "fail"),))] == 1.0
    assert samples[("agentha_chaos_runs_ended_total", (("verdict", "pass"),))] == 0.0
    assert sum(1 for name, _ in samples if name == "agentha_chaos_run_active") == 1


@contextlib.asynccontextmanager
async def serve(token: str | None = None):
    store = StateStore({"test/orders": GroupSpec(1, (A1, A2))})
    chaos = ChaosBoard(store.events, lambda: AGENTS)
    registry = CollectorRegistry()
    registry.register(ChaosCollector(chaos))
    runner = web.AppRunner(create_app(store, registry, token=token, chaos=chaos))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", store
    finally:
        await runner.cleanup()


@pytest.mark.asyncio
async def test_reports_through_the_api_reach_runs_events_and_metrics() -> None:
    async with serve() as (url, store), MonitorClient(url) as client:
        await client.report_chaos("run-1", report("fault", (A1, "stop")))
        runs = (await client.chaos_runs())["runs"]
        assert [(r["run"], r["phase"]) for r in runs] == [("run-1", "fault")]
        assert runs[0]["faults"][0]["agent"] == A1
        assert [e.kind for e in store.events.since(0)] == ["chaos", "fault"]
        async with client.session.get(f"{url}/metrics") as response:
            text = await response.text()
        assert 'agentha_chaos_fault_active{action="stop",agent="a1"' in text
        with pytest.raises(MonitorClientError, match=r"HTTP 422: faults\[0\].agent"):
            await client.report_chaos("run-1", report("fault", ("test/orders/nope", "stop")))
        async with client.session.put(f"{url}/api/v1/chaos/runs/run-1", data=b"{") as response:
            assert response.status == 400
        big = report("fault") | {"title": "x" * 70_000}
        async with client.session.put(f"{url}/api/v1/chaos/runs/run-1", json=big) as response:
            assert response.status == 413


@pytest.mark.asyncio
async def test_with_a_token_a_report_needs_it() -> None:
    token = "Api-T0ken-for-tests!"
    async with serve(token) as (url, _store):
        async with MonitorClient(url) as anonymous:
            with pytest.raises(MonitorClientError, match="HTTP 401"):
                await anonymous.report_chaos("run-1", report("fault"))
        async with MonitorClient(url, token=token) as client:
            await client.report_chaos("run-1", report("fault"))


def test_only_loopback_clients_report_without_a_token() -> None:
    assert _loopback("127.0.0.1") and _loopback("127.5.6.7") and _loopback("::1")
    assert not _loopback("192.0.2.1") and not _loopback(None) and not _loopback("unix")


@pytest.mark.asyncio
async def test_a_monitor_without_a_board_has_no_chaos_routes() -> None:
    store = StateStore({"test/orders": GroupSpec(1, (A1, A2))})
    runner = web.AppRunner(create_app(store, CollectorRegistry()))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/api/v1/chaos/runs"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            assert response.status == 404
    finally:
        await runner.cleanup()
