"""The dashboard's model and details on a hand-made snapshot: group findings from the auth
probe and the security audit are kept by API check and shown with the group."""

from __future__ import annotations

from rich.console import Console

from tui.model import FleetModel
from tui.screens import agent_details

SNAPSHOT = {
    "environments": {"test": {"profile": "test", "groups": ["test/orders"]}},
    "groups": {
        "test/orders": {
            "status": "ok", "reason": "1 spare", "healthy": 2, "required": 1,
            "agents": ["test/orders/a1", "test/orders/a2"],
            "findings": {"list-orders audit": ["method_accepted", "no_rate_limit"],
                         "get-order": [], "list-orders": ["unauthenticated_accepted"]},
        }
    },
    "agents": {
        "test/orders/a1": {"state": "up", "reason": "ok", "since": 1.0, "findings": []},
        "test/orders/a2": {"state": "up", "reason": "ok", "since": 1.0, "findings": []},
    },
}  # fmt: skip


def test_group_findings_are_kept_by_check_and_shown_with_the_group() -> None:
    model = FleetModel(clock=lambda: 10.0)
    model.apply_snapshot(SNAPSHOT)
    assert model.groups["test/orders"].findings == (
        "list-orders: unauthenticated_accepted",
        "list-orders audit: method_accepted, no_rate_limit",
    )
    console = Console(width=160, record=True)
    console.print(agent_details(model, model.agents["test/orders/a1"]))
    text = console.export_text()
    assert "group findings" in text and "list-orders audit: method_accepted" in text


def test_a_group_without_findings_shows_none() -> None:
    quiet = {**SNAPSHOT, "groups": {"test/orders": {**SNAPSHOT["groups"]["test/orders"],
                                                     "findings": {}}}}  # fmt: skip
    model = FleetModel(clock=lambda: 10.0)
    model.apply_snapshot(quiet)
    assert model.groups["test/orders"].findings == ()
    console = Console(width=160, record=True)
    console.print(agent_details(model, model.agents["test/orders/a1"]))
    assert "group findings" not in console.export_text()
