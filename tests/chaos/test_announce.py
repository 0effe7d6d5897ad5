"""The announcer: a chaos run's reports to the monitor, best effort and never in the way.

Against the monitor's real API app (with its chaos board) on loopback, a small app that
refuses reports and one that never answers, and a closed port.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from aio_helpers import until
from aiohttp import web
from load_helpers import free_port
from prometheus_client import CollectorRegistry

from chaos.announce import Announcer, action_word, build_report, experiment_name, new_run_id
from chaos.record import RunRecord
from monitor.api import create_app
from monitor.chaos_board import ChaosBoard
from monitor.client import MonitorClient
from monitor.state import GroupSpec, StateStore

pytestmark = pytest.mark.timeout(30)
A1, A2 = "test/orders/a1", "test/orders/a2"


class RunState:
    """What a controller would report: changed by the test, read at each send."""

    def __init__(self) -> None:
        self.phase = "preflight"
        self.faults: list[tuple[str, str]] = []
        self.verdict: str | None = None

    def report(self) -> dict:
        return build_report(
            experiment="stop one.yaml", title="Stop one", group="test/orders",
            phase=self.phase, started=1_700_000_000.0, faults=self.faults, verdict=self.verdict,
        )  # fmt: skip


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def monitor_app() -> tuple[web.Application, StateStore]:
    store = StateStore({"test/orders": GroupSpec(1, (A1, A2))})
    chaos = ChaosBoard(store.events, lambda: frozenset({A1, A2}))
    return create_app(store, CollectorRegistry(), chaos=chaos), store


def test_report_fields_fit_what_the_monitor_accepts() -> None:
    assert experiment_name("stop one agent!") == "stop-one-agent"
    assert experiment_name("...") == "experiment" and len(experiment_name("x" * 90)) == 64
    assert action_word("Kill 9") == "kill-9" and action_word("9") == "fault"
    report = build_report(
        experiment="e", title="t", group="g/h", phase="fault", started=1.0,
        faults=[(A2, "stop"), (A1, "slow"), (A2, "stop")], verdict="pass",
    )  # fmt: skip
    # Duplicates folded, sorted; a verdict only ever goes with "done".
    assert report["faults"] == [{"agent": A1, "action": "slow"}, {"agent": A2, "action": "stop"}]
    assert report["verdict"] is None
    first, second = new_run_id(1_700_000_000.0), new_run_id(1_700_000_000.0)
    assert first.startswith("20231114T221320Z-") and first != second


@pytest.mark.asyncio
async def test_changes_reach_the_monitor_in_order_and_the_end_carries_the_verdict() -> None:
    app, store = monitor_app()
    state, said, notes = RunState(), [], []
    async with serving(app) as url, MonitorClient(url) as client:
        announcer = Announcer(client, "run-1", state.report, say=said.append, notes=notes)
        announcer.start()
        await until(lambda: announcer.sent == 1)
        state.phase = "fault"
        state.faults = [(A1, "stop")]
        announcer.changed()
        await until(lambda: announcer.sent == 2)
        (run,) = (await client.chaos_runs())["runs"]
        assert run["phase"] == "fault" and run["faults"][0]["agent"] == A1
        state.phase, state.faults = "recovery", []
        announcer.changed()
        state.phase, state.verdict = "done", "pass"
        await announcer.finish()
        (run,) = (await client.chaos_runs())["runs"]
    assert (run["phase"], run["verdict"], run["faults"]) == ("done", "pass", [])
    seen = [(e.kind, e.id, e.old, e.new) for e in store.events.since(0)]
    assert seen[:3] == [
        ("chaos", "run-1", "none", "preflight"),
        ("chaos", "run-1", "preflight", "fault"),
        ("fault", A1, "none", "stop"),
    ]
    # The revert comes before the phase after it; recovery and done may arrive as one report.
    assert seen[3:] in (
        [
            ("fault", A1, "stop", "none"),
            ("chaos", "run-1", "fault", "recovery"),
            ("chaos", "run-1", "recovery", "done"),
        ],
        [("fault", A1, "stop", "none"), ("chaos", "run-1", "fault", "done")],
    )
    assert run["experiment"] == "stop-one.yaml"
    assert said == [] and notes == []


@pytest.mark.asyncio
async def test_a_quiet_run_still_reports_every_heartbeat() -> None:
    app, _store = monitor_app()
    state = RunState()
    async with serving(app) as url, MonitorClient(url) as client:
        announcer = Announcer(client, "run-1", state.report, say=print, notes=[], heartbeat_s=0.2)
        announcer.start()
        await until(lambda: announcer.sent >= 3, within=3)
        await announcer.finish()


@pytest.mark.asyncio
async def test_a_refusing_monitor_is_said_and_noted_once_and_a_resume_once() -> None:
    bodies: list[dict] = []
    refuse = True

    async def put(request: web.Request) -> web.Response:
        bodies.append(await request.json())
        if refuse:
            return web.json_response({"error": "faults[0].agent: not an agent"}, status=422)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_put("/api/v1/chaos/runs/{run}", put)
    state, said, notes = RunState(), [], []
    async with serving(app) as url, MonitorClient(url) as client:
        announcer = Announcer(
            client, "run-1", state.report, say=said.append, notes=notes, heartbeat_s=0.1
        )
        announcer.start()
        await until(lambda: len(bodies) >= 3)  # kept trying
        assert len(said) == 1 and len(notes) == 1
        assert "HTTP 422: faults[0].agent: not an agent" in said[0]
        assert notes[0].startswith("reports to the monitor failed:")
        refuse = False
        await until(lambda: announcer.sent >= 1)
        state.phase, state.verdict = "done", "fail"
        await announcer.finish()
    assert said[1:] == ["monitor: reports to the monitor resumed"] and len(notes) == 1
    assert bodies[-1]["phase"] == "done" and bodies[-1]["verdict"] == "fail"


@pytest.mark.asyncio
async def test_a_monitor_that_never_answers_holds_nothing_up() -> None:
    stuck = asyncio.Event()

    async def put(_request: web.Request) -> web.Response:
        await stuck.wait()  # set only when the test is over
        return web.Response(status=204)

    app = web.Application()
    app.router.add_put("/api/v1/chaos/runs/{run}", put)
    state, said, notes = RunState(), [], []
    async with serving(app) as url, MonitorClient(url) as client:
        announcer = Announcer(
            client, "run-1", state.report, say=said.append, notes=notes, timeout_s=0.3
        )
        started = time.monotonic()
        announcer.start()
        for _ in range(50):  # changes never wait for a report
            announcer.changed()
        assert time.monotonic() - started < 0.1
        await until(lambda: said)
        await announcer.finish()  # after the one in flight, bounded by its own timeout
        assert time.monotonic() - started < 2.0
        stuck.set()
    assert "no answer within 0.3 s" in said[0] and len(notes) == 1


@pytest.mark.asyncio
async def test_a_monitor_gone_is_one_line_and_one_note() -> None:
    said, notes = [], []
    async with MonitorClient(f"http://127.0.0.1:{free_port()}") as client:
        announcer = Announcer(client, "run-1", RunState().report, say=said.append, notes=notes)
        announcer.start()
        await until(lambda: said)
        await announcer.finish()
    assert len(said) == 1 and "ClientConnectorError" in said[0] and len(notes) == 1


def test_a_run_record_from_before_runs_reported_still_loads() -> None:
    old = {"title": "t", "experiment": "e.yaml", "group": "test/orders", "started": 1.0}
    record = RunRecord.from_json(old)
    assert (record.run_id, record.monitor_url, record.monitor_token_env) == ("", "", None)
