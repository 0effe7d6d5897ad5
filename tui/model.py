"""The dashboard's picture of the fleet, built only from the monitor's snapshot and events.

Pure data, no Textual: the feed writes into it, the widgets read it on their own schedule.
Every change bumps ``version`` so a view can tell cheaply whether it has anything to redraw.
Values that were never measured stay ``None`` and are shown as blanks, never as zero.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from operator import attrgetter
from typing import Any

from tui.chaos import ChaosRuns

STATES = ("up", "degraded", "paused", "down", "unknown")
GROUP_STATUSES = ("ok", "at_risk", "unavailable", "unknown")
TAKES_TRAFFIC = frozenset({"up", "degraded"})
# Worst first, for sorting by state.
SEVERITY = {"down": 0, "degraded": 1, "unknown": 2, "paused": 3, "up": 4}
HISTORY = 24  # recent status probe latencies kept per agent, for the sparkline
EVENTS_KEPT = 500  # events kept for the log and the detail view
SECONDS_PER_DAY = 86400.0

SORT_KEYS = ("state", "agent", "age", "latency", "processes", "cert", "tls", "findings")
# "problems" is every state but up: what an operator looks for first.
STATE_FILTERS = ("all", "problems", "down", "degraded", "paused", "unknown", "up")


@dataclass(slots=True, eq=False)
class AgentRow:
    id: str
    env: str
    group: str  # group id, ENV/GROUP
    name: str
    state: str = "unknown"
    severity: int = SEVERITY["unknown"]  # of the state, kept beside it: the default sort key
    reason: str = ""
    since: float | None = None
    findings: tuple[str, ...] = ()
    probed: float | None = None  # when the last status probe started (monitor's clock)
    latency: float | None = None  # seconds the last status probe took
    history: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY))
    processes: int | None = None
    not_after: float | None = None  # leaf certificate expiry (UNIX time)
    tls_version: str | None = None
    probes: dict[str, dict[str, Any]] = field(default_factory=dict)  # last result per probe
    faults: tuple[str, ...] = ()  # chaos fault actions held on it now ("stop", "pause"...)

    def cert_days(self, now: float) -> float | None:
        if self.not_after is None:
            return None
        return (self.not_after - now) / SECONDS_PER_DAY

    def matches(self, text: str) -> bool:
        """Case-insensitive search over the id, state, reason and findings."""
        haystack = f"{self.id} {self.state} {self.reason} {' '.join(self.findings)}"
        if self.faults:
            haystack += f" fault {' '.join(self.faults)}"
        return text in haystack.lower()


@dataclass(slots=True)
class GroupRow:
    id: str
    env: str
    name: str
    agents: tuple[str, ...] = ()
    status: str = "unknown"
    reason: str = ""
    healthy: int = 0
    required: int = 0
    # "CHECK: finding, ..." from the auth probe and the security audit ("CHECK audit")
    findings: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return len(self.agents)

    @property
    def redundancy(self) -> int:
        return self.healthy - self.required


@dataclass(frozen=True, slots=True)
class Query:
    """What the agent table shows: a scope (environment or group id), filters and the sort."""

    scope: str = ""  # "" for the whole fleet, "ENV" or "ENV/GROUP"
    state: str = "all"
    text: str = ""
    sort: str = "state"
    reverse: bool = False

    def with_(self, **changes: Any) -> Query:
        return replace(self, **changes)


class FleetModel:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.agents: dict[str, AgentRow] = {}
        self.groups: dict[str, GroupRow] = {}
        self.environments: dict[str, str] = {}  # name -> profile
        self.events: deque[dict[str, Any]] = deque(maxlen=EVENTS_KEPT)
        self.events_added = 0  # events ever added: tells the log whether to redraw
        self.chaos = ChaosRuns()
        self._faulted: set[str] = set()  # agents whose rows carry fault marks
        self.version = 0
        self.topology_version = 0  # bumped when environments, groups or agents come or go
        self.loaded = False
        self.last_update: float | None = None  # our clock, when data last arrived
        self._rows_cache: tuple[tuple[int, Query], list[AgentRow]] | None = None
        self._by_id_cache: tuple[int, list[AgentRow]] | None = None
        self._longest_id = 0

    # -- writing ---------------------------------------------------------------------------

    def apply_snapshot(self, snap: Mapping[str, Any]) -> None:
        """Take in a whole ``/api/v1/snapshot``; agents and groups it lacks are dropped."""
        for _ in self.snapshot_steps(snap):
            pass

    def snapshot_steps(self, snap: Mapping[str, Any], step: int = 1000) -> Iterator[None]:
        """``apply_snapshot`` in steps of ``step`` agents, so a caller can let keys in between.

        Between steps every agent is whole (old values or new ones); the agent and group
        tables are swapped in at the end.
        """
        groups_in = snap.get("groups") or {}
        agents_in = snap.get("agents") or {}
        envs_in = snap.get("environments") or {}
        environments = {name: str(env.get("profile") or "") for name, env in envs_in.items()}
        for gid in groups_in:
            environments.setdefault(gid.split("/", 1)[0], "")
        agents = {}
        for index, (aid, data) in enumerate(agents_in.items(), 1):
            agents[aid] = self._agent(aid, data)
            if index % step == 0:
                yield
        topology = (list(environments), list(groups_in), list(agents_in))
        if topology != (list(self.environments), list(self.groups), list(self.agents)):
            self.topology_version += 1
        self.environments = environments
        self.groups = {gid: self._group(gid, data) for gid, data in groups_in.items()}
        self.agents = agents
        if "chaos" in snap:
            self.chaos.apply_snapshot(snap.get("chaos") or {})
        else:  # a monitor without chaos runs, or a source of events alone
            self.chaos.forget(self.clock())
        self._mark_faults()
        self.loaded = True
        self._changed()

    def apply_event(self, event: Mapping[str, Any]) -> None:
        """Take in one transition from ``/api/v1/events``."""
        self.events.append(dict(event))
        self.events_added += 1
        kind, target = event.get("kind"), str(event.get("id", ""))
        if kind == "agent" and target in self.agents:
            row = self.agents[target]
            row.state = str(event.get("new", "unknown"))
            row.reason, row.since = str(event.get("reason", "")), event.get("time")
            row.severity = SEVERITY.get(row.state, 2)
            group = self.groups.get(row.group)
            if group is not None:
                group.healthy = sum(
                    self.agents[a].state in TAKES_TRAFFIC for a in group.agents if a in self.agents
                )
        elif kind == "group" and target in self.groups:
            group = self.groups[target]
            group.status = str(event.get("new", "unknown"))
            group.reason = str(event.get("reason", ""))
        elif kind in ("chaos", "fault"):
            self.chaos.apply_event(event)
            self._mark_faults()
        self._changed()

    def note(self, text: str) -> None:
        """A line of the dashboard's own in the event log (connection lost, reconnected)."""
        self.events.append({"kind": "note", "time": self.clock(), "reason": text})
        self.events_added += 1
        self._changed()

    def _mark_faults(self) -> None:
        """Put the faults held now on the agents' rows (only rows that gain or lose one)."""
        faulted = self.chaos.faulted
        for aid in self._faulted.difference(faulted):
            row = self.agents.get(aid)
            if row is not None:
                row.faults = ()
        for aid, held in faulted.items():
            row = self.agents.get(aid)
            if row is not None:
                row.faults = held
        self._faulted = set(faulted)

    def _changed(self) -> None:
        self.version += 1
        self.last_update = time.monotonic()

    def _group(self, gid: str, data: Mapping[str, Any]) -> GroupRow:
        env, _, name = gid.partition("/")
        return GroupRow(
            id=gid,
            env=env,
            name=name,
            agents=tuple(data.get("agents") or ()),
            status=str(data.get("status", "unknown")),
            reason=str(data.get("reason", "")),
            healthy=int(data.get("healthy") or 0),
            required=int(data.get("required") or 0),
            findings=tuple(
                f"{check}: {', '.join(map(str, words))}"
                for check, words in sorted((data.get("findings") or {}).items())
                if words
            ),
        )

    def _agent(self, aid: str, data: Mapping[str, Any]) -> AgentRow:
        row = self.agents.get(aid)
        if row is None:
            group, _, name = aid.rpartition("/")
            row = AgentRow(id=aid, env=group.split("/", 1)[0], group=group, name=name)
        row.state = str(data.get("state", "unknown"))
        row.severity = SEVERITY.get(row.state, 2)
        row.reason = str(data.get("reason", ""))
        row.since = data.get("since")
        row.findings = tuple(data.get("findings") or ())
        probes = data.get("probes") or {}
        row.probes = probes
        status = probes.get("status")
        if status and status.get("started") != row.probed:
            row.probed = status.get("started")
            row.latency = status.get("duration")
            if row.latency is not None:
                row.history.append(row.latency)
            row.processes = (status.get("details") or {}).get("executing_processes")
        tls = (probes.get("tls") or {}).get("details") or {}
        if tls:
            row.tls_version = tls.get("version")
            row.not_after = tls.get("not_after")
        return row

    # -- reading ---------------------------------------------------------------------------

    def rows(self, query: Query) -> list[AgentRow]:
        """The agents ``query`` selects, sorted; cached until the model or the query changes."""
        key = (self.version, query)
        if self._rows_cache is not None and self._rows_cache[0] == key:
            return self._rows_cache[1]
        rows = self._select(query)
        if query.sort == "state":
            # The rows come in id order and the sort is stable: one number per row is enough.
            rows.sort(key=attrgetter("severity"))
            if query.reverse:
                rows.reverse()
        else:
            rows.sort(key=self._sort_key(query.sort), reverse=query.reverse)
        self._rows_cache = (key, rows)
        return rows

    def _by_id(self) -> list[AgentRow]:
        if self._by_id_cache is None or self._by_id_cache[0] != self.topology_version:
            ordered = sorted(self.agents.values(), key=attrgetter("id"))
            self._by_id_cache = (self.topology_version, ordered)
            self._longest_id = max((len(row.id) for row in ordered), default=0)
        return self._by_id_cache[1]

    def longest_id(self) -> int:
        """Characters in the longest agent id (for the table's column width)."""
        self._by_id()
        return self._longest_id

    def _select(self, query: Query) -> list[AgentRow]:
        rows: Iterable[AgentRow] = self._by_id()
        if query.scope:
            scope = query.scope
            if "/" in scope:
                rows = (r for r in rows if r.group == scope)
            else:
                rows = (r for r in rows if r.env == scope)
        if query.state == "problems":
            rows = (r for r in rows if r.state != "up")
        elif query.state != "all":
            state = query.state
            rows = (r for r in rows if r.state == state)
        if query.text:
            text = query.text.lower()
            rows = (r for r in rows if r.matches(text))
        return list(rows)

    def _sort_key(self, sort: str) -> Callable[[AgentRow], Any]:
        now = self.clock()
        missing = float("inf")  # unmeasured values sort last
        keys: dict[str, Callable[[AgentRow], Any]] = {
            "agent": lambda r: r.id,
            "age": lambda r: (now - r.probed if r.probed is not None else missing, r.id),
            "latency": lambda r: (r.latency if r.latency is not None else missing, r.id),
            "processes": lambda r: (r.processes if r.processes is not None else missing, r.id),
            "cert": lambda r: (r.cert_days(now) if r.not_after is not None else missing, r.id),
            "tls": lambda r: (r.tls_version or "~", r.id),
            "findings": lambda r: (-len(r.faults), -len(r.findings), r.id),
        }
        return keys[sort]

    def agent_counts(self) -> Counter[str]:
        return Counter(row.state for row in self.agents.values())

    def group_counts(self) -> Counter[str]:
        return Counter(group.status for group in self.groups.values())

    def events_of(self, target: str) -> list[dict[str, Any]]:
        """Events of one agent (or group), oldest first."""
        return [e for e in self.events if e.get("id") == target]

    def env_status(self, env: str) -> str:
        """The worst status of an environment's groups."""
        statuses = {g.status for g in self.groups.values() if g.env == env}
        for status in ("unavailable", "at_risk", "unknown", "ok"):
            if status in statuses:
                return status
        return "unknown"
