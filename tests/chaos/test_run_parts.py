"""The run controller's pure parts: phase cuts, fault times, checks, the guard and the journal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chaos import guard, measures
from chaos.errors import ChaosError
from chaos.faults import Fault
from chaos.journal import Journal, active_journals, pending
from chaos.record import FaultWindow, Phase, RunRecord, Second, StateChange
from loadtests.latency import Histogram
from loadtests.thresholds import parse_threshold
from loadtests.timeline import Second as LoadSecond
from loadtests.timeline import Tally

T0 = 1_800_000_000


def load_second(t: int, ok: int, fail: int) -> LoadSecond:
    return LoadSecond(t, t - T0, 5, {"api": Tally(ok, fail, Histogram({10.0: ok + fail}))})


def test_seconds_straddling_the_fault_belong_to_it() -> None:
    seconds = [load_second(T0 + i, 10, 0) for i in range(10)]
    baseline = Phase("baseline", T0 + 0.0, T0 + 3.9)
    fault = Phase("fault", T0 + 3.9, T0 + 6.5)
    recovery = Phase("recovery", T0 + 6.5, T0 + 10.0)
    assert [s.t - T0 for s in measures.in_phase(seconds, baseline)] == [0, 1, 2]
    assert [s.t - T0 for s in measures.in_phase(seconds, fault)] == [3, 4, 5, 6]
    assert [s.t - T0 for s in measures.in_phase(seconds, recovery)] == [7, 8, 9]


def test_threshold_checks_name_the_first_failing_window() -> None:
    seconds = [load_second(T0 + i, 10, 5 if i == 3 else 0) for i in range(6)]
    (check,) = measures.threshold_checks("fault", seconds, [parse_threshold("success>=99%")], 2)
    assert not check.passed and check.phase == "fault"
    assert check.detail.startswith("window 2 (2-4 s") and "5 of 25 failed" in check.detail
    (empty,) = measures.threshold_checks("fault", [], [parse_threshold("p95<1s")], 2)
    assert not empty.passed and empty.observed == "no load recorded in this phase"


def test_fault_times_from_events_and_the_error_stream() -> None:
    agent = "e/g/a1"
    window = FaultWindow("f1", "fleetsim", "stop", agent, "stop a1", 0, T0 + 10.2, T0 + 20.0)
    seconds = [Second(T0 + i, 10, 10 - (i in (10, 11, 12)), int(i in (10, 11, 12)))
               for i in range(30)]  # fmt: skip
    states = [
        StateChange(T0 + 5.0, agent, "agent", "down", "up"),  # before the fault: ignored
        StateChange(T0 + 11.4, agent, "agent", "up", "down", "refused"),
        StateChange(T0 + 23.1, agent, "agent", "down", "up", "ok"),
        StateChange(T0 + 11.0, "e/g/a2", "agent", "up", "down"),  # another agent
    ]
    measures.fault_times(window, seconds, states)
    assert window.detection_s == pytest.approx(1.2)
    assert window.failover_s == pytest.approx(2.8)  # the last failed second (12) ends at 13
    assert window.recovery_s == pytest.approx(3.1)
    checks = measures.time_checks(
        [window], max_detection_s=1.0, max_failover_s=5, max_recovery_s=None
    )
    assert [(c.name.split()[0], c.passed) for c in checks] == [
        ("detection", False), ("failover", True),
    ]  # fmt: skip
    quiet = FaultWindow("f2", "fleetsim", "slow", agent, "slow a1", 0, T0 + 25.0, T0 + 27.0)
    measures.fault_times(quiet, seconds, states)
    assert (quiet.detection_s, quiet.failover_s, quiet.recovery_s) == (None, 0.0, 0.0)
    (missed,) = measures.time_checks(
        [quiet], max_detection_s=10, max_failover_s=None, max_recovery_s=None
    )
    assert not missed.passed and missed.observed == "not detected by the monitor"


def test_an_agent_degraded_before_the_fault_is_back_when_degraded_again() -> None:
    agent = "e/g/a1"
    window = FaultWindow("f1", "fleetsim", "pause", agent, "pause a1", 0, T0 + 10, T0 + 20)
    states = [
        StateChange(T0 + 1, agent, "agent", "", "degraded", "at preflight"),
        StateChange(T0 + 10.5, agent, "agent", "degraded", "paused", "paused"),
        StateChange(T0 + 21.5, agent, "agent", "paused", "degraded", "certificate expires"),
    ]
    measures.fault_times(window, [], states)
    assert (window.detection_s, window.recovery_s) == (0.5, 1.5)


def test_group_status_check_sees_a_dip_inside_the_phase() -> None:
    record = RunRecord("t", "x.yaml", "e/g", T0)
    record.states = [
        StateChange(T0 + 1, "e/g", "group", "ok", "at_risk"),
        StateChange(T0 + 12, "e/g", "group", "at_risk", "unavailable", "below required"),
        StateChange(T0 + 13, "e/g", "group", "unavailable", "at_risk"),
        StateChange(T0 + 30, "e/g", "group", "at_risk", "unavailable"),  # after the phase
    ]
    phase = Phase("fault", T0 + 10, T0 + 20)
    check = measures.group_status_check(record, phase, ("ok", "at_risk"), "ok")
    assert not check.passed and check.detail.startswith("unavailable at +2.0 s: below required")
    calm = measures.group_status_check(
        record, Phase("fault", T0 + 14, T0 + 20), ("ok", "at_risk"), "ok"
    )
    assert calm.passed and calm.observed == "at_risk"


SNAPSHOT = {
    "agents": {"e/g/a1": {"state": "up"}, "e/g/a2": {"state": "degraded"},
               "e/g/a3": {"state": "paused"}},
    "groups": {"e/g": {"status": "at_risk", "required": 2,
                       "agents": ["e/g/a1", "e/g/a2", "e/g/a3"]}},
}  # fmt: skip


def test_guard_counts_agents_taking_traffic_and_faults_still_applied() -> None:
    allowed = guard.check_fault(SNAPSHOT, "e/g", [], (), allow_outage=False, what="nothing")
    assert allowed.allowed and "2 of 3 agents left" in allowed.line
    refused = guard.check_fault(SNAPSHOT, "e/g", ["e/g/a1"], (), allow_outage=False, what="x")
    assert not refused.allowed and refused.line.startswith("refused: x: 1 of 3")
    outage = guard.check_fault(SNAPSHOT, "e/g", ["e/g/a1"], (), allow_outage=True, what="x")
    assert outage.allowed and "allow_outage" in outage.line
    # A paused agent is out already: taking it changes nothing; a fault still applied counts.
    assert guard.check_fault(SNAPSHOT, "e/g", ["e/g/a3"], (), allow_outage=False, what="x").allowed
    assert not guard.check_fault(
        SNAPSHOT, "e/g", ["e/g/a3"], ["e/g/a2"], allow_outage=False, what="x"
    ).allowed


def test_steady_needs_an_allowed_status_and_every_agent_probed() -> None:
    assert guard.steady(SNAPSHOT, "e/g", ("ok", "at_risk")) is None
    assert guard.steady(SNAPSHOT, "e/g", ("ok",)).startswith("group e/g is at_risk")
    assert guard.steady(SNAPSHOT, "e/x", ("ok",)) == "the monitor does not know group e/x"
    unknown = json.loads(json.dumps(SNAPSHOT))
    unknown["agents"]["e/g/a1"]["state"] = "unknown"
    assert guard.steady(unknown, "e/g", ("ok", "at_risk")).startswith("1 agent(s) not probed")


def test_load_abort_counts_silent_seconds_as_failure() -> None:
    fine = [guard.LoadSecond(10, 0, 5)] * 5
    assert guard.load_abort(fine, below=0.5, over_s=5) is None
    assert guard.load_abort(fine[:4], below=0.5, over_s=5) is None  # not enough seconds yet
    hanging = [guard.LoadSecond(0, 0, 5)] * 5
    assert "0.0%" in guard.load_abort(hanging, below=0.5, over_s=5)
    idle = [guard.LoadSecond(0, 0, 0)] * 5
    assert guard.load_abort(idle, below=0.5, over_s=5) is None
    assert guard.load_abort(hanging, below=None, over_s=5) is None


def test_journal_pending_and_active_pointer(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("AGENTHA_STATE_DIR", str(tmp_path / "state"))
    run = tmp_path / "run"
    run.mkdir()
    journal = Journal(run)
    one = Fault("s1/a1", "fleetsim", "stop", "e/g/a1", ttl_s=60)
    two = Fault("s1/a2", "fleetsim", "slow", "e/g/a2", {"ms": 50})
    three = Fault("s2/a3", "fleetsim", "hang", "e/g/a3")
    settings = {"fleet_json": "/x/fleet.json"}
    for fault in (one, two, three):
        journal.intend(fault, settings)
    journal.injected(one)
    journal.injected(two)
    journal.reverted(one)
    journal.reverted(two, "control API answered 500")
    assert active_journals() == [journal.path.resolve()]
    left = {p.fault.id: p for p in pending(journal.path)}
    assert set(left) == {"s1/a2", "s2/a3"}
    assert left["s1/a2"].injected and left["s1/a2"].last_error == "control API answered 500"
    assert not left["s2/a3"].injected  # the driver never returned: maybe half applied
    assert left["s1/a2"].fault == two and left["s1/a2"].driver_settings == settings
    # A torn last line (killed while writing) is ignored; one in the middle is an error.
    with journal.path.open("a") as handle:
        handle.write('{"op": "revert", "fault_id": "s2/a')
    assert {p.fault.id for p in pending(journal.path)} == {"s1/a2", "s2/a3"}
    with journal.path.open("a") as handle:
        handle.write("\n{}\n")
    with pytest.raises(ChaosError, match=r"journal.jsonl:\d+: not a journal line"):
        pending(journal.path)
    journal.close(clean=True)
    assert active_journals() == []
