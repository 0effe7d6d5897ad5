"""The JSON payloads a monitor publishes, one builder per topic kind.

Each has a JSON Schema in ``monitor/schemas/`` (``schema(name)``). Payloads carry states,
enumerated reasons and counts only: no URLs, no probe messages, no agent response content,
and never a secret.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from monitor.events import Event
from monitor.state import StateStore

SCHEMAS = ("agent", "group", "event", "presence")


def schema(name: str) -> dict[str, Any]:
    """The JSON Schema of payload ``name`` (one of ``SCHEMAS``)."""
    text = resources.files("monitor").joinpath("schemas", f"{name}.schema.json").read_text()
    return json.loads(text)


def encode(payload: dict[str, object]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def agent(monitor_id: str, store: StateStore, agent_id: str) -> dict[str, object]:
    record = store.agent(agent_id)
    environment, group, name = agent_id.split("/", 2)
    return {
        "monitor": monitor_id,
        "id": agent_id,
        "environment": environment,
        "group": group,
        "agent": name,
        "state": record.state.value,
        "reason": record.reason,
        "since": record.since,
        "findings": record.all_findings(),
    }


def group(monitor_id: str, store: StateStore, group_id: str) -> dict[str, object]:
    record = store.group(group_id)
    environment, name = group_id.split("/", 1)
    healthy, required, total = store.group_counts(group_id)
    return {
        "monitor": monitor_id,
        "id": group_id,
        "environment": environment,
        "group": name,
        "status": record.status.value,
        "reason": record.reason,
        "since": record.since,
        "healthy": healthy,
        "required": required,
        "total": total,
        "redundancy": healthy - required,
        "entrypoint_ok": record.entrypoint_ok,
        "findings": {check: sorted(words) for check, words in sorted(record.findings.items())},
        "agents": list(record.spec.agents),
    }


def event(monitor_id: str, item: Event) -> dict[str, object]:
    return {"monitor": monitor_id, **item.to_dict()}


def presence(
    monitor_id: str, status: str, time: float, *, shard: str | None, version: str
) -> dict[str, object]:
    """``status`` is ``online`` or ``offline`` (also the last will, set at connect time)."""
    return {
        "monitor": monitor_id,
        "status": status,
        "time": time,
        "shard": shard,
        "version": version,
    }
