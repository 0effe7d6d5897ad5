"""Helpers for the audit tests: the fleet's inventory with audit sections, the command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from load_helpers import agentha

from fleetsim.outputs import AUDIT  # what the fleet's secure agents enforce

__all__ = ["AGENTS", "AUDIT", "CLASSES", "GROUP", "agentha", "audit_inventory", "insecure"]

GROUP = "test/orders"
AGENTS = ("test/orders/orders-1", "test/orders/orders-2")
CLASSES = ("auth", "ip", "methods", "headers", "input", "rate")


def audit_inventory(
    fleet: Any, directory: Path, audit: dict[str, Any] | None = None, extra_checks: int = 0
) -> Path:
    """The fleet's inventory with an audit section on every group (CA path made absolute)."""
    data = yaml.safe_load((fleet.directory / "inventory.yaml").read_text())
    data["defaults"]["tls"]["ca_bundle"] = str(fleet.ca_file)
    for env in data["environments"]:
        for group in env["groups"]:
            group["audit"] = audit if audit is not None else AUDIT
            first = group["api_checks"][0]
            for n in range(extra_checks):
                group["api_checks"].append({**first, "name": f"{first['name']}-{n}"})
    path = directory / "inventory.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def insecure(fleet: Any, *classes: str) -> None:
    for agent in AGENTS:
        fleet.set(agent, audit_insecure=list(classes))
