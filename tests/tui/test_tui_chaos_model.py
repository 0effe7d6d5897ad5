"""Chaos runs in the dashboard's model, from the monitor's own chaos board.

A real ``monitor.chaos_board.ChaosBoard`` takes the reports; the model is fed either its
events alone (what an MQTT-fed dashboard gets) or the snapshot's ``chaos`` as well (HTTP), and
both must tell the same story: the phase, the group, the faults on each agent, a lost run.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.text import Text

from monitor.chaos_board import ChaosBoard
from monitor.events import EventLog
from tui.event_log import event_segments
from tui.header import chaos_lines
from tui.model import FleetModel, Query
from tui.screens import agent_details

A1, A2 = "test/orders/a1", "test/orders/a2"
SNAPSHOT = {
    "environments": {"test": {"profile": "test", "groups": ["test/orders"]}},
    "groups": {
        "test/orders": {"status": "ok", "reason": "1 spare", "healthy": 2, "required": 1,
                        "agents": [A1, A2]},
    },
    "agents": {
        A1: {"state": "up", "reason": "ok", "since": 1.0, "findings": []},
        A2: {"state": "up", "reason": "ok", "since": 1.0, "findings": ["cert_expiring"]},
    },
}  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Board:
    """A monitor's chaos board and event log; ``feed`` passes new events to models."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.log = EventLog(clock=self.clock)
        self.board = ChaosBoard(self.log, lambda: {A1, A2}, clock=self.clock)
        self._seen = 0

    def report(
        self,
        run: str,
        phase: str,
        faults: list[tuple[str, str]] = (),
        verdict: str | None = None,
        group: str = "test/orders",
    ) -> None:
        self.board.report(run, {
            "experiment": "stop-one-agent", "group": group, "phase": phase,
            "started": 990.0, "verdict": verdict,
            "faults": [{"agent": agent, "action": action} for agent, action in faults],
        })  # fmt: skip

    def feed(self, *models: FleetModel) -> list[dict[str, Any]]:
        events = [e.to_dict() for e in self.log.since(self._seen)]
        self._seen = self.log.last_seq
        for model in models:
            for event in events:
                model.apply_event(event)
        return events

    def snapshot(self) -> dict[str, Any]:
        return {**SNAPSHOT, "chaos": self.board.snapshot()}


def models(board: Board) -> tuple[FleetModel, FleetModel]:
    """One model fed by events alone, one by events and snapshots."""
    events_only, with_snapshots = FleetModel(board.clock), FleetModel(board.clock)
    events_only.apply_snapshot(SNAPSHOT)  # agents and groups, no "chaos" key
    with_snapshots.apply_snapshot(board.snapshot())
    return events_only, with_snapshots


def story(model: FleetModel) -> list[tuple[Any, ...]]:
    """What the screen shows of the chaos runs."""
    return [
        (r.run, r.experiment, r.group, r.phase, r.lost, dict(r.faults))
        for r in model.chaos.active()
    ] + [("row", aid, row.faults) for aid, row in sorted(model.agents.items())]


def text_of(renderable: Any) -> str:
    console = Console(width=200, record=True)
    console.print(renderable)
    return console.export_text()


def test_events_alone_tell_the_phase_group_and_faults_of_a_run() -> None:
    board = Board()
    events_only, with_snapshots = models(board)
    board.report("r1", "baseline")
    board.feed(events_only, with_snapshots)
    assert story(events_only)[0] == ("r1", "stop-one-agent", "test/orders", "baseline", False, {})

    board.report("r1", "fault", [(A1, "stop"), (A1, "pause")])
    board.feed(events_only, with_snapshots)
    with_snapshots.apply_snapshot(board.snapshot())
    assert events_only.agents[A1].faults == ("pause", "stop")
    assert events_only.agents[A2].faults == ()
    assert story(events_only) == story(with_snapshots)
    line = chaos_lines(events_only.chaos.active(), board.clock.now).plain
    assert line.startswith("↯ chaos stop-one-agent on test/orders  phase ↯ fault  1 fault: ")
    assert "a1 ↯pause+stop" in line and "run r1" in line
    # The mark is searched and sorts first by findings.
    assert [r.id for r in events_only.rows(Query(text="stop"))] == [A1]
    assert [r.id for r in events_only.rows(Query(sort="findings"))] == [A1, A2]

    board.report("r1", "recovery")
    board.feed(events_only, with_snapshots)
    assert events_only.agents[A1].faults == ()
    board.report("r1", "done", verdict="pass")
    board.feed(events_only, with_snapshots)
    with_snapshots.apply_snapshot(board.snapshot())
    assert story(events_only) == story(with_snapshots)
    assert events_only.chaos.active() == []
    assert events_only.chaos.runs["r1"].verdict == "pass"


def test_a_run_done_while_holding_faults_leaves_no_mark() -> None:
    board = Board()
    events_only, _ = models(board)
    board.report("r1", "fault", [(A2, "stop")])
    board.feed(events_only)
    assert events_only.agents[A2].faults == ("stop",)
    board.report("r1", "done", [(A2, "stop")], verdict="aborted")
    events = board.feed(events_only)
    assert [e["kind"] for e in events] == ["chaos", "fault"]  # the end, then its faults
    assert events_only.agents[A2].faults == ()
    assert events_only.chaos.active() == []


def test_a_lost_run_keeps_its_faults_and_asks_for_recover() -> None:
    board = Board()
    events_only, with_snapshots = models(board)
    board.report("r1", "fault", [(A1, "stop")])
    board.feed(events_only, with_snapshots)
    board.clock.now += board.board.stale_after + 1
    board.board.sweep()
    board.feed(events_only, with_snapshots)
    with_snapshots.apply_snapshot(board.snapshot())
    assert story(events_only) == story(with_snapshots)
    (run,) = events_only.chaos.active()
    assert run.lost and run.faults == {A1: ("stop",)}
    line = chaos_lines([run], board.clock.now).plain
    assert line.startswith("▲ lost chaos run — needs agentha chaos recover: stop-one-agent")
    details = text_of(agent_details(events_only, events_only.agents[A1]))
    assert "chaos fault" in details and "↯stop by chaos run r1" in details
    assert "agentha chaos recover" in details

    # Reporting again brings it back; a lost run the monitor forgets goes from events too.
    board.report("r1", "fault", [(A1, "stop")])
    board.feed(events_only)
    assert not events_only.chaos.active()[0].lost
    board.clock.now += board.board.stale_after + 1
    board.board.sweep()
    board.clock.now += board.board.forget_after + 1
    board.board.sweep()
    board.feed(events_only, with_snapshots)
    with_snapshots.apply_snapshot(board.snapshot())
    assert story(events_only) == story(with_snapshots)
    assert events_only.chaos.active() == [] and events_only.agents[A1].faults == ()


def test_two_runs_on_one_agent_and_a_snapshot_without_chaos() -> None:
    board = Board()
    events_only, _ = models(board)
    board.report("r1", "fault", [(A1, "stop")])
    board.report("r2", "fault", [(A1, "latency"), (A2, "pause")])
    board.feed(events_only)
    assert events_only.agents[A1].faults == ("latency", "stop")
    assert [r.run for r in events_only.chaos.active()] == ["r2", "r1"]  # newest first
    # A snapshot without "chaos" (an older monitor, or events alone) keeps what events said,
    # and rows made anew by it get their marks.
    fresh = FleetModel(board.clock)
    board._seen = 0
    board.feed(fresh)  # events before the first snapshot: no rows to mark yet
    fresh.apply_snapshot(SNAPSHOT)
    assert fresh.agents[A1].faults == ("latency", "stop") and fresh.agents[A2].faults == ("pause",)
    # A snapshot with "chaos" is the whole truth.
    fresh.apply_snapshot({**SNAPSHOT, "chaos": {"runs": []}})
    assert fresh.chaos.active() == [] and fresh.agents[A1].faults == ()


def test_event_log_lines_for_chaos_and_fault_events() -> None:
    board = Board()
    events_only, _ = models(board)
    board.report("r1", "fault", [(A1, "stop")])
    board.report("r1", "done", verdict="fail")
    lines = [
        Text.assemble(*((s.text, s.style) for s in event_segments(e))).plain[9:]
        for e in board.feed(events_only)
    ]
    assert lines == [
        "↯ fault       chaos r1  was none: stop-one-agent on test/orders",
        "↯ stop        fault test/orders/a1  was none: chaos run r1",
        "✔ cleared     fault test/orders/a1  was stop: chaos run r1",
        "✖ fail        chaos r1  was fault: stop-one-agent on test/orders: fail",
    ]
    unknown = {"kind": "drill", "id": "x", "old": "ok", "new": "at_risk", "time": 1.0,
               "reason": "a kind from a newer monitor"}  # fmt: skip
    text = Text.assemble(*((s.text, s.style) for s in event_segments(unknown))).plain[9:]
    assert text == "• at_risk     drill x  was ok: a kind from a newer monitor"  # not a group
