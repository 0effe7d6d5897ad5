"""Chaos runs as the monitor hears of them, for Prometheus, Grafana, MQTT and the dashboard.

``agentha chaos run`` reports its phase and the faults it holds to the monitor while it runs
(``PUT /api/v1/chaos/runs/RUN``). The board keeps the last few runs, bounded, and turns every
change into an event on the monitor's event stream: ``chaos`` for a run's phase (id: the run),
``fault`` for the faults on one agent (id: the agent). A run that stops reporting before its
``done`` is marked ``lost``: its faults stay shown, because a crashed run leaves them applied
until ``agentha chaos recover``. The reports are untrusted input: every field is checked and
every label value the exporter makes of them is bounded.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass, field
from typing import Any

from monitor.errors import MonitorError
from monitor.events import EventLog

log = logging.getLogger(__name__)

PHASES = ("preflight", "warmup", "baseline", "fault", "recovery", "done")
VERDICTS = ("pass", "fail", "aborted", "error")
LOST = "lost"
MAX_RUNS = 16  # runs kept, active ones first; the oldest ended one goes first
MAX_FAULTS = 256  # faults one report may hold
STALE_AFTER = 30.0  # seconds without a report before an active run is lost
FORGET_AFTER = 3600.0  # seconds an ended or lost run stays on the board

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")
# The reasons of chaos and fault events (readers of the event stream parse them back).
_PHASE_REASON = re.compile(r"(?P<experiment>\S+) on (?P<group>[^\s:]+)(?:: (?P<rest>.*))?")
_FAULT_REASON = re.compile(r"chaos run (?P<run>\S+)")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_ACTION = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_TITLE_MAX = 200


class ChaosReportError(MonitorError):
    """A chaos report the board refuses: one line naming the field."""


@dataclass
class ChaosRun:
    run: str
    experiment: str
    title: str
    group: str  # ENV/GROUP
    phase: str
    started: float
    updated: float
    verdict: str | None = None
    ended: float | None = None
    faults: dict[str, tuple[str, ...]] = field(default_factory=dict)  # agent id -> actions
    since: dict[str, float] = field(default_factory=dict)  # agent id -> first seen faulted
    counted: bool = False  # in ``finished`` already: each run counts once, lost or ended

    @property
    def active(self) -> bool:
        """Still running, or lost with faults that may still be applied."""
        return self.ended is None

    def to_dict(self) -> dict[str, object]:
        return {
            "run": self.run,
            "experiment": self.experiment,
            "title": self.title,
            "group": self.group,
            "phase": self.phase,
            "verdict": self.verdict,
            "started": self.started,
            "updated": self.updated,
            "ended": self.ended,
            "faults": [
                {"agent": agent, "actions": list(actions), "since": self.since[agent]}
                for agent, actions in sorted(self.faults.items())
            ],
        }


@dataclass(frozen=True)
class _Report:
    experiment: str
    title: str
    group: str
    phase: str
    started: float
    verdict: str | None
    faults: dict[str, tuple[str, ...]]


class ChaosBoard:
    """The chaos runs reported to this monitor; events go to ``events``."""

    def __init__(
        self,
        events: EventLog,
        known_agents: Callable[[], Container[str]],
        *,
        clock: Callable[[], float] = time.time,
        stale_after: float = STALE_AFTER,
        forget_after: float = FORGET_AFTER,
    ) -> None:
        self.events = events
        self._known = known_agents
        self._clock = clock
        self.stale_after = stale_after
        self.forget_after = forget_after
        self.runs: dict[str, ChaosRun] = {}
        self.finished: dict[str, int] = dict.fromkeys((*VERDICTS, LOST), 0)

    # -- input ---------------------------------------------------------------------------

    def report(self, run_id: str, body: object) -> ChaosRun:
        """Apply one report; raises ``ChaosReportError`` and changes nothing when it is bad."""
        if not _RUN_ID.fullmatch(run_id):
            raise ChaosReportError(f"run id {run_id[:80]!r}: expected 1-80 of A-Z a-z 0-9 . _ -")
        report = self._parse(body)
        now = self._clock()
        run = self.runs.get(run_id)
        if run is not None and run.ended is not None and run.phase != LOST:
            raise ChaosReportError(f"run {run_id}: already ended ({run.verdict})")
        if run is None:
            self._make_room()
            run = ChaosRun(
                run_id, report.experiment, report.title, report.group, "", report.started, now
            )
            self.runs[run_id] = run
            log.info("chaos run %s (%s on %s) reported", run_id, run.experiment, run.group)
        run.updated = now
        # Faults reverted come before the phase that follows them, faults applied after it.
        self._set_faults(run, report.faults, now, fewer=True)
        if run.phase != report.phase:
            reason = phase_reason(run.experiment, run.group, report.verdict)
            self.events.append("chaos", run_id, run.phase or "none", report.phase, reason)
            run.phase = report.phase
        self._set_faults(run, report.faults, now, fewer=False)
        if report.phase == "done":
            self._end(run, report.verdict or "error", now)
        return run

    def _parse(self, body: object) -> _Report:
        if not isinstance(body, Mapping):
            raise ChaosReportError("report: expected a JSON object")
        unknown = set(body) - {
            "experiment",
            "title",
            "group",
            "phase",
            "started",
            "verdict",
            "faults",
        }
        if unknown:
            raise ChaosReportError(f"report: unknown field {sorted(unknown)[0]!r}")
        experiment = _text(body, "experiment", _NAME, "1-64 of A-Z a-z 0-9 . _ -")
        group = body.get("group")
        if not isinstance(group, str) or group.count("/") != 1:
            raise ChaosReportError("group: expected ENV/GROUP")
        title = body.get("title", "")
        if not isinstance(title, str):
            raise ChaosReportError("title: expected a string")
        phase = body.get("phase")
        if phase not in PHASES:
            raise ChaosReportError(f"phase: expected one of {', '.join(PHASES)}")
        started = body.get("started")
        if (
            isinstance(started, bool)
            or not isinstance(started, int | float)
            or not (math.isfinite(started) and started > 0)
        ):
            raise ChaosReportError("started: expected a UNIX time in seconds")
        verdict = body.get("verdict")
        if verdict is not None and verdict not in VERDICTS:
            raise ChaosReportError(f"verdict: expected one of {', '.join(VERDICTS)} or null")
        if verdict is not None and phase != "done":
            raise ChaosReportError("verdict: only with phase done")
        return _Report(
            experiment,
            title[:_TITLE_MAX],
            group,
            phase,
            float(started),
            verdict,
            self._faults(body.get("faults", [])),
        )

    def _faults(self, raw: object) -> dict[str, tuple[str, ...]]:
        if not isinstance(raw, list):
            raise ChaosReportError("faults: expected a list")
        if len(raw) > MAX_FAULTS:
            raise ChaosReportError(f"faults: at most {MAX_FAULTS}")
        known = self._known()
        faults: dict[str, set[str]] = {}
        for i, item in enumerate(raw):
            if not isinstance(item, Mapping) or set(item) != {"agent", "action"}:
                raise ChaosReportError(f"faults[{i}]: expected {{agent, action}}")
            agent, action = item["agent"], item["action"]
            if not isinstance(agent, str) or agent not in known:
                raise ChaosReportError(f"faults[{i}].agent: not an agent of this inventory")
            if not isinstance(action, str) or not _ACTION.fullmatch(action):
                raise ChaosReportError(f"faults[{i}].action: expected a lower-case word")
            faults.setdefault(agent, set()).add(action)
        return {agent: tuple(sorted(actions)) for agent, actions in faults.items()}

    def _set_faults(
        self,
        run: ChaosRun,
        faults: dict[str, tuple[str, ...]],
        now: float,
        *,
        fewer: bool | None = None,
    ) -> None:
        """Make ``run.faults`` equal ``faults``, an event per agent that changes; with
        ``fewer`` only the agents that lose faults (True) or the others (False)."""
        for agent in sorted(set(run.faults) | set(faults)):
            old, new = run.faults.get(agent, ()), faults.get(agent, ())
            if old == new or (fewer is not None and (set(new) < set(old)) != fewer):
                continue
            self.events.append(
                "fault", agent, join_actions(old), join_actions(new), fault_reason(run.run)
            )
            if new:
                run.faults[agent] = new
                run.since.setdefault(agent, now)
            else:
                del run.faults[agent]
                run.since.pop(agent, None)

    def _end(self, run: ChaosRun, verdict: str, now: float) -> None:
        self._set_faults(run, {}, now)
        run.verdict, run.ended = verdict, now
        if not run.counted:  # a lost run that ends later (recovered) was counted as lost
            self.finished[verdict] += 1
            run.counted = True
        log.info("chaos run %s ended: %s", run.run, verdict)

    def _make_room(self) -> None:
        while len(self.runs) >= MAX_RUNS:
            ended = [r for r in self.runs.values() if r.ended is not None]
            oldest = min(ended or self.runs.values(), key=lambda r: r.updated)
            del self.runs[oldest.run]

    # -- time ----------------------------------------------------------------------------

    def sweep(self) -> None:
        """Mark runs that stopped reporting as lost; forget old ended ones."""
        now = self._clock()
        for run in list(self.runs.values()):
            if run.ended is None and run.phase != LOST and now - run.updated > self.stale_after:
                self.events.append(
                    "chaos",
                    run.run,
                    run.phase,
                    LOST,
                    phase_reason(
                        run.experiment, run.group, f"no report for {self.stale_after:.0f} s"
                    ),
                )
                log.warning(
                    "chaos run %s: no report for %.0f s, marked lost", run.run, self.stale_after
                )
                run.phase = LOST
                if not run.counted:
                    self.finished[LOST] += 1
                    run.counted = True
            elif now - run.updated > self.forget_after:
                if run.faults:
                    self._set_faults(run, {}, now)
                del self.runs[run.run]

    async def run(self, every: float = 5.0) -> None:
        while True:
            await asyncio.sleep(every)
            self.sweep()

    # -- views ---------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        runs = sorted(self.runs.values(), key=lambda r: r.started, reverse=True)
        return {"runs": [r.to_dict() for r in runs]}


def phase_reason(experiment: str, group: str, rest: str | None = None) -> str:
    """A ``chaos`` event's reason: ``EXPERIMENT on ENV/GROUP[: verdict or why]``."""
    return f"{experiment} on {group}" + (f": {rest}" if rest else "")


def parse_phase_reason(reason: str) -> tuple[str, str, str]:
    """(experiment, group, what follows) of a ``chaos`` event's reason; blanks if unreadable."""
    match = _PHASE_REASON.fullmatch(reason)
    if match is None:
        return "", "", reason
    return match["experiment"], match["group"], match["rest"] or ""


def fault_reason(run: str) -> str:
    """A ``fault`` event's reason: the run that holds (or held) the faults."""
    return f"chaos run {run}"


def run_of_fault_reason(reason: str) -> str | None:
    match = _FAULT_REASON.fullmatch(reason)
    return None if match is None else match["run"]


def join_actions(actions: tuple[str, ...]) -> str:
    """A ``fault`` event's ``old``/``new``: actions joined by ``+``, or ``none``."""
    return "+".join(actions) or "none"


def split_actions(value: str) -> tuple[str, ...]:
    return () if value in ("", "none") else tuple(value.split("+"))


def _text(body: Mapping[str, Any], key: str, pattern: re.Pattern[str], expected: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ChaosReportError(f"{key}: expected {expected}")
    return value
