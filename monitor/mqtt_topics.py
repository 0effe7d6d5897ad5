"""The MQTT topic layout: everything a monitor publishes sits under its own id.

    agentha/v1/<monitor-id>/presence                        retained, last will "offline"
    agentha/v1/<monitor-id>/agents/<env>/<group>/<agent>    retained agent state
    agentha/v1/<monitor-id>/groups/<env>/<group>            retained group state
    agentha/v1/<monitor-id>/events                          transitions, QoS 1, not retained

Inventory names are lower case letters, digits, '-' and '_', so ids map to levels as they are.
"""

from __future__ import annotations

import re
from typing import Literal

ROOT = "agentha/v1"
MONITOR_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")

Kind = Literal["presence", "agents", "groups", "events"]


def valid_monitor_id(monitor_id: str) -> bool:
    return bool(MONITOR_ID.match(monitor_id))


def presence(monitor_id: str) -> str:
    return f"{ROOT}/{monitor_id}/presence"


def events(monitor_id: str) -> str:
    return f"{ROOT}/{monitor_id}/events"


def agent(monitor_id: str, agent_id: str) -> str:
    """``agent_id`` is ENV/GROUP/AGENT."""
    return f"{ROOT}/{monitor_id}/agents/{agent_id}"


def group(monitor_id: str, group_id: str) -> str:
    """``group_id`` is ENV/GROUP."""
    return f"{ROOT}/{monitor_id}/groups/{group_id}"


def peer_filters(monitor_id: str) -> list[str]:
    """What a monitor subscribes to in order to follow a peer."""
    return [presence(monitor_id), f"{ROOT}/{monitor_id}/agents/#"]


def parse(topic: str) -> tuple[str, Kind, str] | None:
    """``(monitor id, kind, object id)`` for one of our topics, else None."""
    parts = topic.split("/")
    if len(parts) < 4 or "/".join(parts[:2]) != ROOT:
        return None
    monitor_id, kind, rest = parts[2], parts[3], parts[4:]
    if kind in ("presence", "events") and not rest:
        return monitor_id, kind, ""
    if kind == "agents" and len(rest) == 3:
        return monitor_id, "agents", "/".join(rest)
    if kind == "groups" and len(rest) == 2:
        return monitor_id, "groups", "/".join(rest)
    return None
