"""The Prometheus collector reads the store at scrape time, with bounded labels."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from monitor.collector import MonitorCollector
from monitor.state import GroupSpec, Liveness, StateStore

A1, A2 = "prod/orders/a1", "prod/orders/a2"


def make(store: StateStore) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(MonitorCollector(store, None, version="1.2.3"))
    return registry


def test_agent_and_group_metrics_follow_the_store_at_each_scrape() -> None:
    store = StateStore({"prod/orders": GroupSpec(1, (A1, A2))}, rise=1, fall=1)
    registry = make(store)
    agent = {"environment": "prod", "group": "orders", "agent": "a1"}
    group = {"environment": "prod", "group": "orders"}
    assert registry.get_sample_value("agentha_agent_up", agent) == 0
    assert registry.get_sample_value("agentha_agent_state", {**agent, "state": "unknown"}) == 1
    assert registry.get_sample_value("agentha_group_status", {**group, "status": "unknown"}) == 1

    store.observe_status(A1, Liveness.UP, "ok")
    store.observe_status(A2, Liveness.PAUSED, "paused")
    assert registry.get_sample_value("agentha_agent_up", agent) == 1
    assert registry.get_sample_value("agentha_agent_state", {**agent, "state": "up"}) == 1
    assert registry.get_sample_value("agentha_agent_state", {**agent, "state": "unknown"}) == 0
    assert registry.get_sample_value("agentha_group_healthy_agents", group) == 1
    assert registry.get_sample_value("agentha_group_required_agents", group) == 1
    assert registry.get_sample_value("agentha_group_agents", group) == 2
    assert registry.get_sample_value("agentha_group_redundancy", group) == 0
    assert registry.get_sample_value("agentha_group_status", {**group, "status": "at_risk"}) == 1
    assert registry.get_sample_value("agentha_events_total") == 3  # a1, a2, group
    assert registry.get_sample_value("agentha_build_info", {"version": "1.2.3"}) == 1


def test_entrypoint_is_absent_until_measured() -> None:
    store = StateStore({"prod/orders": GroupSpec(1, (A1,))})
    registry = make(store)
    group = {"environment": "prod", "group": "orders"}
    assert registry.get_sample_value("agentha_group_entrypoint_up", group) is None
    store.observe_entrypoint("prod/orders", "list", False, "timeout")
    assert registry.get_sample_value("agentha_group_entrypoint_up", group) == 0


def test_exposition_names_no_reason_text() -> None:
    store = StateStore({"prod/orders": GroupSpec(1, (A1,))}, rise=1, fall=1)
    store.observe_status(A1, Liveness.DOWN, "refused")
    text = generate_latest(make(store)).decode()
    assert "refused" not in text  # reasons are events, not labels of the state metrics
    assert (
        'agentha_agent_state{agent="a1",environment="prod",group="orders",state="down"} 1.0' in text
    )
