"""Chaos runs as the dashboard knows them: from the snapshot's ``chaos`` key, or events alone.

The monitor keeps a board of chaos runs (``monitor.chaos_board``). Over HTTP the snapshot
carries it whole; an event-only source (MQTT) gets just the ``chaos`` events (a run's phase)
and ``fault`` events (the actions a run holds on one agent), so a run is pieced together from
their ids and reasons. Pure data, no Textual.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from monitor.chaos_board import (
    FORGET_AFTER,
    LOST,
    MAX_RUNS,
    VERDICTS,
    parse_phase_reason,
    run_of_fault_reason,
    split_actions,
)

DONE = "done"


@dataclass(slots=True)
class ChaosRun:
    run: str
    experiment: str = ""
    group: str = ""  # ENV/GROUP
    title: str = ""
    phase: str = ""
    verdict: str | None = None
    started: float | None = None
    updated: float | None = None
    ended: float | None = None
    faults: dict[str, tuple[str, ...]] = field(default_factory=dict)  # agent id -> actions
    since: dict[str, float] = field(default_factory=dict)  # agent id -> under fault since

    @property
    def active(self) -> bool:
        """Running, or lost (its faults may still be applied)."""
        return self.ended is None

    @property
    def lost(self) -> bool:
        return self.phase == LOST


def verdict_of(phase: str, reason: str) -> str | None:
    """The verdict a ``chaos`` event to ``done`` carries at the end of its reason."""
    rest = parse_phase_reason(reason)[2]
    return rest if phase == DONE and rest in VERDICTS else None


class ChaosRuns:
    """The chaos runs, newest first, and which agents are under a fault now."""

    def __init__(self) -> None:
        self.runs: dict[str, ChaosRun] = {}
        self.faulted: dict[str, tuple[str, ...]] = {}  # agent id -> actions, active runs only

    def apply_snapshot(self, board: Mapping[str, Any]) -> None:
        """Take in the snapshot's ``chaos`` (``{"runs": [...]}``): it replaces what was known."""
        runs: dict[str, ChaosRun] = {}
        for data in board.get("runs") or ():
            if not isinstance(data, Mapping):
                continue  # not a run: nothing to show of it
            run = ChaosRun(
                run=str(data.get("run", "")),
                experiment=str(data.get("experiment") or ""),
                group=str(data.get("group") or ""),
                title=str(data.get("title") or ""),
                phase=str(data.get("phase") or ""),
                verdict=data.get("verdict"),
                started=data.get("started"),
                updated=data.get("updated"),
                ended=data.get("ended"),
            )
            for fault in data.get("faults") or ():
                if not isinstance(fault, Mapping):
                    continue
                agent = str(fault.get("agent", ""))
                run.faults[agent] = tuple(map(str, fault.get("actions") or ()))
                if fault.get("since") is not None:
                    run.since[agent] = fault["since"]
            runs[run.run] = run
        self.runs = runs
        self._mark()

    def apply_event(self, event: Mapping[str, Any]) -> None:
        """Take in one ``chaos`` or ``fault`` event."""
        when = event.get("time")
        new, reason = str(event.get("new", "")), str(event.get("reason", ""))
        if event.get("kind") == "chaos":
            run = self._run(str(event.get("id", "")), when)
            experiment, group, _rest = parse_phase_reason(reason)
            run.experiment = experiment or run.experiment
            run.group = group or run.group
            run.phase, run.updated = new, when
            if new == DONE:
                run.verdict, run.ended = verdict_of(new, reason), when
                run.faults.clear()  # the fault events that follow say the same
                run.since.clear()
            elif run.ended is not None:
                run.ended = run.verdict = None  # a lost run reporting again
        else:
            run_id = run_of_fault_reason(reason)
            if run_id is None:
                return
            run = self._run(run_id, when)
            agent, held = str(event.get("id", "")), split_actions(new)
            if not run.group:
                run.group = agent.rpartition("/")[0]
            if held and run.active:
                run.faults[agent] = held
                run.since.setdefault(agent, when)
            else:
                run.faults.pop(agent, None)
                run.since.pop(agent, None)
                if run.lost and not run.faults:
                    # The monitor forgets a lost run by taking its faults back: so do we.
                    del self.runs[run.run]
        self._mark()

    def forget(self, now: float) -> None:
        """Drop lost runs not heard of for an hour (events bring no news of their end)."""
        stale = [
            r.run
            for r in self.runs.values()
            if r.lost and r.updated is not None and now - r.updated > FORGET_AFTER
        ]
        for run in stale:
            del self.runs[run]
        if stale:
            self._mark()

    def active(self) -> list[ChaosRun]:
        """Runs not ended, lost ones first (they need an operator), then newest first."""
        runs = [r for r in self.runs.values() if r.active]
        runs.sort(key=lambda r: (not r.lost, -(r.started or r.updated or 0.0)))
        return runs

    def groups(self) -> set[str]:
        """Groups with an active run."""
        return {r.group for r in self.runs.values() if r.active}

    def runs_on(self, agent: str) -> list[ChaosRun]:
        """Active runs holding a fault on ``agent``."""
        return [r for r in self.runs.values() if r.active and agent in r.faults]

    def _run(self, run_id: str, when: float | None) -> ChaosRun:
        run = self.runs.get(run_id)
        if run is None:
            run = ChaosRun(run_id, started=when, updated=when)
            self.runs = {run_id: run, **self.runs}  # newest first, as the monitor lists them
            ended = [r.run for r in self.runs.values() if not r.active]
            while len(self.runs) > MAX_RUNS:  # as the monitor keeps
                # The oldest ended run goes first; without one, the oldest run.
                del self.runs[ended.pop() if ended else next(reversed(self.runs))]
        return run

    def _mark(self) -> None:
        faulted: dict[str, tuple[str, ...]] = {}
        for run in self.runs.values():
            if run.active:
                for agent, held in run.faults.items():
                    faulted[agent] = _union(faulted.get(agent, ()), held)
        self.faulted = faulted


def _union(first: Iterable[str], second: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(first) | set(second)))
