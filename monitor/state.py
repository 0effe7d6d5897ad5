"""The StateStore: the single source of truth for agent states and group availability.

Probe results come in as observations; the store applies rise/fall thresholds, rolls agents
up into their groups, and appends an event for every transition. Exporters only read it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from monitor.events import Event, EventLog


class AgentState(StrEnum):
    UNKNOWN = "unknown"
    UP = "up"
    PAUSED = "paused"
    DEGRADED = "degraded"  # up, but with findings (expiring certificate, plaintext exposed...)
    DOWN = "down"


class Liveness(StrEnum):
    """What one status probe saw, before rise/fall is applied."""

    UP = "up"
    PAUSED = "paused"
    DOWN = "down"


class GroupStatus(StrEnum):
    UNKNOWN = "unknown"  # some agent has not been probed yet
    OK = "ok"  # at least one spare agent
    AT_RISK = "at_risk"  # exactly the required number of agents take traffic
    UNAVAILABLE = "unavailable"  # below required, or the entrypoint fails


@dataclass(frozen=True, slots=True)
class GroupSpec:
    """What the store needs to know of a group: its agents and how many must be healthy."""

    required: int
    agents: tuple[str, ...]


@dataclass(slots=True)
class AgentRecord:
    state: AgentState = AgentState.UNKNOWN
    reason: str = ""
    since: float | None = None
    # Consecutive observations of a liveness other than the current one (rise/fall).
    pending: Liveness | None = None
    pending_count: int = 0
    findings: dict[str, frozenset[str]] = field(default_factory=dict)

    @property
    def liveness(self) -> Liveness | None:
        return _LIVENESS_OF.get(self.state)

    def all_findings(self) -> list[str]:
        return sorted(set().union(*self.findings.values())) if self.findings else []


@dataclass(slots=True)
class CheckRecord:
    """One API check through the group's entrypoint, with the same rise/fall as agents."""

    ok: bool | None = None
    reason: str = ""
    pending_count: int = 0  # consecutive results that disagree with ``ok``


@dataclass(slots=True)
class GroupRecord:
    spec: GroupSpec
    status: GroupStatus = GroupStatus.UNKNOWN
    reason: str = ""
    since: float | None = None
    checks: dict[str, CheckRecord] = field(default_factory=dict)
    findings: dict[str, frozenset[str]] = field(default_factory=dict)  # by check

    @property
    def entrypoint_ok(self) -> bool | None:
        """False when any check fails, True when all pass, None before the first result."""
        known = [c.ok for c in self.checks.values() if c.ok is not None]
        return all(known) if known else None

    @property
    def entrypoint_reason(self) -> str:
        return ",".join(sorted(f"{n}: {c.reason}" for n, c in self.checks.items() if c.ok is False))


_LIVENESS_OF = {
    AgentState.UP: Liveness.UP,
    AgentState.DEGRADED: Liveness.UP,
    AgentState.PAUSED: Liveness.PAUSED,
    AgentState.DOWN: Liveness.DOWN,
}
_TAKES_TRAFFIC = frozenset({AgentState.UP, AgentState.DEGRADED})


def group_of(agent_id: str) -> str:
    """``ENV/GROUP/AGENT`` -> ``ENV/GROUP``."""
    return agent_id.rsplit("/", 1)[0]


class StateStore:
    """Agent states with rise/fall thresholds and the group roll-up.

    ``rise`` consecutive successes bring a down agent back; ``fall`` consecutive failures take a
    live one down. A first observation decides at once, and pause/resume (an explicit signal
    from the agent, not a failure) needs no confirmation.
    """

    def __init__(
        self,
        groups: Mapping[str, GroupSpec],
        *,
        rise: int = 2,
        fall: int = 2,
        events: EventLog | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if rise < 1 or fall < 1:
            raise ValueError("rise and fall must be at least 1")
        self.rise = rise
        self.fall = fall
        self.events = events if events is not None else EventLog(clock=clock)
        self._clock = clock
        self._agents: dict[str, AgentRecord] = {}
        self._groups: dict[str, GroupRecord] = {}
        self.set_topology(groups)

    # -- topology --------------------------------------------------------------------------

    def set_topology(self, groups: Mapping[str, GroupSpec]) -> None:
        """Install a new set of groups (start-up or reload); known agents keep their state."""
        self._groups = {
            gid: GroupRecord(spec=spec, **_carry(self._groups.get(gid)))
            for gid, spec in groups.items()
        }
        wanted = [aid for spec in groups.values() for aid in spec.agents]
        self._agents = {aid: self._agents.get(aid) or AgentRecord() for aid in wanted}
        for gid in self._groups:
            self._roll_up(gid)

    @property
    def agent_ids(self) -> list[str]:
        return list(self._agents)

    @property
    def group_ids(self) -> list[str]:
        return list(self._groups)

    def agent(self, agent_id: str) -> AgentRecord:
        return self._agents[agent_id]

    def group(self, group_id: str) -> GroupRecord:
        return self._groups[group_id]

    # -- observations ----------------------------------------------------------------------

    def observe_status(self, agent_id: str, seen: Liveness, reason: str) -> list[Event]:
        """Record one status probe outcome; returns the events it caused."""
        record = self._agents.get(agent_id)
        if record is None:  # removed by a reload while its probe was in flight
            return []
        current = record.liveness
        if seen == current:
            record.pending, record.pending_count = None, 0
            return []
        if seen == record.pending:
            record.pending_count += 1
        else:
            record.pending, record.pending_count = seen, 1
        if current is not None and record.pending_count < self._threshold(current, seen):
            return []
        record.pending, record.pending_count = None, 0
        return self._set_agent(agent_id, record, self._state_for(seen, record), reason)

    def set_findings(self, agent_id: str, source: str, findings: Iterable[str]) -> list[Event]:
        """Replace the findings one probe kind (``source``) reports for an agent."""
        record = self._agents.get(agent_id)
        if record is None:
            return []
        new = frozenset(findings)
        if record.findings.get(source, frozenset()) == new:
            return []
        if new:
            record.findings[source] = new
        else:
            record.findings.pop(source, None)
        if record.liveness is not Liveness.UP:
            return []
        state = self._state_for(Liveness.UP, record)
        reason = ",".join(record.all_findings()) or "findings cleared"
        return self._set_agent(agent_id, record, state, reason)

    def observe_entrypoint(self, group_id: str, check: str, ok: bool, reason: str) -> list[Event]:
        """Record one API check through the entrypoint; a change needs rise/fall results."""
        group = self._groups.get(group_id)
        if group is None:
            return []
        record = group.checks.setdefault(check, CheckRecord())
        if record.ok is None or ok == record.ok:
            record.ok, record.reason, record.pending_count = ok, reason, 0
            return self._roll_up(group_id)
        record.pending_count += 1
        if record.pending_count < (self.rise if ok else self.fall):
            return []
        record.ok, record.reason, record.pending_count = ok, reason, 0
        return self._roll_up(group_id)

    def set_group_findings(self, group_id: str, check: str, findings: Iterable[str]) -> None:
        """Findings of a group's API check (an API that answers without credentials...)."""
        group = self._groups.get(group_id)
        if group is None:
            return
        new = frozenset(findings)
        if new:
            group.findings[check] = new
        else:
            group.findings.pop(check, None)

    # -- reading -----------------------------------------------------------------------------

    def group_counts(self, group_id: str) -> tuple[int, int, int]:
        """(healthy, required, total) for a group."""
        group = self._groups[group_id]
        healthy = sum(self._agents[a].state in _TAKES_TRAFFIC for a in group.spec.agents)
        return healthy, group.spec.required, len(group.spec.agents)

    def snapshot(self) -> dict[str, object]:
        """The whole state as plain JSON-able data."""
        agents = {
            aid: {
                "state": r.state.value,
                "reason": r.reason,
                "since": r.since,
                "findings": r.all_findings(),
            }
            for aid, r in self._agents.items()
        }
        groups = {}
        for gid, g in self._groups.items():
            healthy, required, total = self.group_counts(gid)
            groups[gid] = {
                "status": g.status.value,
                "reason": g.reason,
                "since": g.since,
                "healthy": healthy,
                "required": required,
                "total": total,
                "redundancy": healthy - required,
                "entrypoint_ok": g.entrypoint_ok,
                "entrypoint_reason": g.entrypoint_reason,
                "checks": {n: {"ok": c.ok, "reason": c.reason} for n, c in g.checks.items()},
                "findings": {n: sorted(f) for n, f in g.findings.items()},
                "agents": list(g.spec.agents),
            }
        return {
            "time": self._clock(),
            "last_event": self.events.last_seq,
            "agents": agents,
            "groups": groups,
        }

    # -- internals ---------------------------------------------------------------------------

    def _threshold(self, current: Liveness, seen: Liveness) -> int:
        if seen is Liveness.DOWN:
            return self.fall
        if current is Liveness.DOWN:
            return self.rise
        return 1  # up <-> paused

    @staticmethod
    def _state_for(seen: Liveness, record: AgentRecord) -> AgentState:
        if seen is Liveness.UP:
            return AgentState.DEGRADED if record.findings else AgentState.UP
        return AgentState.PAUSED if seen is Liveness.PAUSED else AgentState.DOWN

    def _set_agent(
        self, agent_id: str, record: AgentRecord, state: AgentState, reason: str
    ) -> list[Event]:
        record.reason = reason
        if state == record.state:
            return []
        old = record.state
        record.state, record.since = state, self._clock()
        events = [self.events.append("agent", agent_id, old.value, state.value, reason)]
        return events + self._roll_up(group_of(agent_id))

    def _roll_up(self, group_id: str) -> list[Event]:
        group = self._groups.get(group_id)
        if group is None:
            return []
        healthy, required, _total = self.group_counts(group_id)
        if any(self._agents[a].state is AgentState.UNKNOWN for a in group.spec.agents):
            status, reason = GroupStatus.UNKNOWN, "not every agent probed yet"
        elif group.entrypoint_ok is False:
            status, reason = GroupStatus.UNAVAILABLE, f"entrypoint {group.entrypoint_reason}"
        elif healthy < required:
            status, reason = GroupStatus.UNAVAILABLE, f"{healthy} of {required} required healthy"
        elif healthy == required:
            status, reason = GroupStatus.AT_RISK, f"no spare agent ({healthy} healthy)"
        else:
            status, reason = GroupStatus.OK, f"{healthy - required} spare"
        group.reason = reason
        if status == group.status:
            return []
        old = group.status
        group.status, group.since = status, self._clock()
        return [self.events.append("group", group_id, old.value, status.value, reason)]


def _carry(old: GroupRecord | None) -> dict[str, object]:
    """Fields a group keeps across a reload."""
    if old is None:
        return {}
    return {
        "status": old.status,
        "reason": old.reason,
        "since": old.since,
        "checks": old.checks,
        "findings": old.findings,
    }
