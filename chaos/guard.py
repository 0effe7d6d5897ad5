"""The blast-radius guard and the abort conditions, judged from live monitor state and load.

The guard answers one question before each fault: with these agents taken out on top of
those already out, does the group keep ``min_healthy`` agents that take traffic? It counts
from the monitor's snapshot (what the monitor sees now), not from the plan, so an agent that
was already down before the run counts as down.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Agent states that take traffic (the monitor's own roll-up counts the same ones).
TAKES_TRAFFIC = frozenset({"up", "degraded"})


@dataclass(frozen=True)
class Decision:
    allowed: bool
    line: str  # one line for people and for the record


def group_view(snapshot: Mapping[str, Any], group: str) -> tuple[dict[str, str], int]:
    """(agent id -> state, required) for ``group`` from a monitor snapshot."""
    groups = snapshot.get("groups") or {}
    if group not in groups:
        raise KeyError(group)
    info = groups[group]
    agents = snapshot.get("agents") or {}
    states = {aid: str((agents.get(aid) or {}).get("state", "unknown")) for aid in info["agents"]}
    return states, int(info.get("required", 1))


def check_fault(
    snapshot: Mapping[str, Any],
    group: str,
    targets: Collection[str],
    already_out: Collection[str],
    *,
    allow_outage: bool,
    what: str,
) -> Decision:
    """May ``targets`` (agent ids) be taken out now? ``already_out``: faults still applied."""
    states, required = group_view(snapshot, group)
    healthy = {a for a, s in states.items() if s in TAKES_TRAFFIC}
    left = healthy - set(targets) - set(already_out)
    counts = f"{len(left)} of {len(states)} agents left taking traffic, min_healthy {required}"
    if len(left) >= required:
        return Decision(True, f"allowed: {what}: {counts}")
    if allow_outage:
        return Decision(True, f"allowed by allow_outage: {what}: {counts}")
    return Decision(False, f"refused: {what}: {counts} (set guards.allow_outage to allow)")


def steady(snapshot: Mapping[str, Any], group: str, statuses: Collection[str]) -> str | None:
    """None when the group is steady (status allowed, no agent unknown), else why not."""
    info = (snapshot.get("groups") or {}).get(group)
    if info is None:
        return f"the monitor does not know group {group}"
    if info["status"] not in statuses:
        return f"group {group} is {info['status']} ({info.get('reason') or 'no reason given'})"
    states, _ = group_view(snapshot, group)
    unknown = sorted(a for a, s in states.items() if s == "unknown")
    if unknown:
        return f"{len(unknown)} agent(s) not probed yet: {', '.join(unknown[:3])}"
    return None


@dataclass(frozen=True)
class LoadSecond:
    requests: int
    fail: int
    users: int


def load_abort(recent: Sequence[LoadSecond], *, below: float | None, over_s: int) -> str | None:
    """Why the run must stop now, judged on the last ``over_s`` whole seconds of load.

    Seconds in which users ran and nothing completed count as total failure: an outage
    where every call hangs must abort too.
    """
    if below is None or len(recent) < over_s:
        return None
    window = recent[-over_s:]
    if not any(s.users for s in window):
        return None
    requests = sum(s.requests for s in window)
    ratio = (requests - sum(s.fail for s in window)) / requests if requests else 0.0
    if ratio < below:
        return (
            f"success ratio {ratio:.1%} over the last {over_s} s is below the abort "
            f"threshold {below:.1%}"
        )
    return None
