"""StateStore: rise/fall, pause, findings, group roll-up and the events they cause."""

from __future__ import annotations

import asyncio

import pytest

from monitor.events import EventLog
from monitor.state import AgentState, GroupSpec, GroupStatus, Liveness, StateStore

UP, PAUSED, DOWN = Liveness.UP, Liveness.PAUSED, Liveness.DOWN
A1, A2, A3 = "prod/orders/a1", "prod/orders/a2", "prod/orders/a3"
GROUP = "prod/orders"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_store(required: int = 1, rise: int = 2, fall: int = 3) -> StateStore:
    spec = GroupSpec(required=required, agents=(A1, A2, A3))
    return StateStore({GROUP: spec}, rise=rise, fall=fall, clock=Clock())


def transitions(events) -> list[tuple[str, str, str]]:
    return [(e.id, e.old, e.new) for e in events]


def test_first_observation_decides_at_once() -> None:
    store = make_store()
    events = store.observe_status(A1, UP, "ok")
    assert transitions(events) == [(A1, "unknown", "up")]
    assert store.agent(A1).state is AgentState.UP
    # The group stays unknown until every agent has been seen.
    assert store.group(GROUP).status is GroupStatus.UNKNOWN


def test_fall_needs_consecutive_failures() -> None:
    store = make_store(fall=3)
    store.observe_status(A1, UP, "ok")
    assert store.observe_status(A1, DOWN, "timeout") == []
    assert store.observe_status(A1, DOWN, "timeout") == []
    events = store.observe_status(A1, DOWN, "refused")
    assert transitions(events)[0] == (A1, "up", "down")
    assert store.agent(A1).reason == "refused"


def test_a_success_resets_the_fall_count() -> None:
    store = make_store(fall=2)
    store.observe_status(A1, UP, "ok")
    store.observe_status(A1, DOWN, "timeout")
    store.observe_status(A1, UP, "ok")
    assert store.observe_status(A1, DOWN, "timeout") == []
    assert store.agent(A1).state is AgentState.UP


def test_rise_needs_consecutive_successes() -> None:
    store = make_store(rise=2, fall=1)
    store.observe_status(A1, DOWN, "refused")
    assert store.observe_status(A1, UP, "ok") == []
    assert store.agent(A1).state is AgentState.DOWN
    assert transitions(store.observe_status(A1, UP, "ok"))[0] == (A1, "down", "up")


def test_pause_and_resume_need_no_confirmation() -> None:
    store = make_store(rise=3, fall=3)
    store.observe_status(A1, UP, "ok")
    assert transitions(store.observe_status(A1, PAUSED, "paused"))[0] == (A1, "up", "paused")
    assert store.agent(A1).state is AgentState.PAUSED
    assert transitions(store.observe_status(A1, UP, "ok"))[0] == (A1, "paused", "up")


def test_paused_agent_going_down_needs_fall() -> None:
    store = make_store(fall=2)
    store.observe_status(A1, PAUSED, "paused")
    assert store.observe_status(A1, DOWN, "refused") == []
    assert transitions(store.observe_status(A1, DOWN, "refused"))[0] == (A1, "paused", "down")


def test_findings_make_an_up_agent_degraded_and_back() -> None:
    store = make_store()
    store.observe_status(A1, UP, "ok")
    events = store.set_findings(A1, "tls", ["cert_expiring"])
    assert transitions(events)[0] == (A1, "up", "degraded")
    assert store.agent(A1).reason == "cert_expiring"
    assert store.set_findings(A1, "tls", ["cert_expiring"]) == []  # unchanged: no event
    events = store.set_findings(A1, "tls", [])
    assert transitions(events)[0] == (A1, "degraded", "up")


def test_findings_of_a_down_agent_wait_until_it_is_up() -> None:
    store = make_store(rise=1, fall=1)
    store.observe_status(A1, DOWN, "refused")
    assert store.set_findings(A1, "plaintext", ["plaintext_served"]) == []
    assert store.agent(A1).state is AgentState.DOWN
    store.observe_status(A1, UP, "ok")
    assert store.agent(A1).state is AgentState.DEGRADED
    assert store.snapshot()["agents"][A1]["findings"] == ["plaintext_served"]


def test_group_goes_through_every_status() -> None:
    store = make_store(required=1, rise=1, fall=1)
    for agent in (A1, A2):
        store.observe_status(agent, UP, "ok")
    events = store.observe_status(A3, UP, "ok")
    assert (GROUP, "unknown", "ok") in transitions(events)
    store.observe_status(A3, PAUSED, "paused")  # paused takes no traffic
    assert store.group(GROUP).status is GroupStatus.OK
    events = store.observe_status(A2, DOWN, "refused")
    assert (GROUP, "ok", "at_risk") in transitions(events)
    events = store.observe_status(A1, DOWN, "timeout")
    assert (GROUP, "at_risk", "unavailable") in transitions(events)
    assert store.group_counts(GROUP) == (0, 1, 3)
    snap = store.snapshot()["groups"][GROUP]
    assert snap["redundancy"] == -1 and snap["status"] == "unavailable"


def test_degraded_agents_still_count_as_healthy() -> None:
    store = make_store(required=2, rise=1, fall=1)
    for agent in (A1, A2, A3):
        store.observe_status(agent, UP, "ok")
    store.set_findings(A1, "tls", ["cert_expiring"])
    assert store.group_counts(GROUP) == (3, 2, 3)
    assert store.group(GROUP).status is GroupStatus.OK


def test_failing_entrypoint_makes_the_group_unavailable() -> None:
    store = make_store(rise=1, fall=1)
    for agent in (A1, A2, A3):
        store.observe_status(agent, UP, "ok")
    events = store.observe_entrypoint(GROUP, "list", False, "unexpected_status")
    assert transitions(events) == [(GROUP, "ok", "unavailable")]
    assert store.group(GROUP).reason == "entrypoint list: unexpected_status"
    events = store.observe_entrypoint(GROUP, "list", True, "ok")
    assert transitions(events) == [(GROUP, "unavailable", "ok")]


def test_entrypoint_checks_use_rise_and_fall_and_all_must_pass() -> None:
    store = make_store(rise=2, fall=2)
    for agent in (A1, A2, A3):
        store.observe_status(agent, UP, "ok")
    store.observe_entrypoint(GROUP, "list", True, "ok")
    store.observe_entrypoint(GROUP, "create", True, "ok")
    assert store.observe_entrypoint(GROUP, "create", False, "timeout") == []  # one failure
    assert store.group(GROUP).entrypoint_ok is True
    events = store.observe_entrypoint(GROUP, "create", False, "timeout")
    assert transitions(events) == [(GROUP, "ok", "unavailable")]
    assert store.snapshot()["groups"][GROUP]["checks"]["create"] == {
        "ok": False,
        "reason": "timeout",
    }


def test_events_carry_time_and_reason_and_are_numbered() -> None:
    clock = Clock()
    store = StateStore({GROUP: GroupSpec(1, (A1,))}, rise=1, fall=1, clock=clock)
    clock.now = 1234.5
    events = store.observe_status(A1, UP, "ok")
    agent_event, group_event = events
    assert agent_event.time == 1234.5 and agent_event.reason == "ok"
    assert (agent_event.seq, group_event.seq) == (1, 2)
    assert group_event.to_dict()["new"] == "at_risk"
    assert store.agent(A1).since == 1234.5


def test_reload_keeps_known_agents_and_drops_removed_ones() -> None:
    store = make_store(rise=1, fall=1)
    store.observe_status(A1, UP, "ok")
    store.set_topology({GROUP: GroupSpec(1, (A1, "prod/orders/a4"))})
    assert store.agent(A1).state is AgentState.UP
    assert store.agent_ids == [A1, "prod/orders/a4"]
    assert store.observe_status(A2, DOWN, "refused") == []  # removed: ignored


def test_thresholds_must_be_positive() -> None:
    with pytest.raises(ValueError):
        StateStore({}, rise=0)


def test_event_log_is_bounded_and_replays_after_a_sequence_number() -> None:
    log = EventLog(capacity=3)
    for i in range(5):
        log.append("agent", f"e/g/a{i}", "up", "down", "refused")
    assert [e.seq for e in log.since(0)] == [3, 4, 5]  # 1 and 2 dropped
    assert [e.seq for e in log.since(3)] == [4, 5]
    assert log.since(5) == []


@pytest.mark.asyncio
async def test_event_log_wakes_a_waiter() -> None:
    log = EventLog()
    waiter = asyncio.create_task(log.wait(after=0))
    await asyncio.sleep(0)
    assert not waiter.done()
    log.append("group", "e/g", "ok", "at_risk", "no spare agent")
    events = await asyncio.wait_for(waiter, 1)
    assert [e.new for e in events] == ["at_risk"]
