"""The record of one chaos run: what the controller saw, what the reports are made from.

The controller fills a ``RunRecord`` as the run goes and writes it as ``run.json`` in the
output folder (each time something changes, so a crash keeps what was seen). Every report
(JUnit, Markdown, HTML) is made from this record alone, so a report can be made again from
``run.json`` later. Times are Unix seconds (float); durations are seconds.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Verdict = Literal["running", "pass", "fail", "aborted", "error"]

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_ABORTED = 2
EXIT_ERROR = 3
EXIT_CODES: dict[str, int] = {
    "pass": EXIT_PASS,
    "fail": EXIT_FAIL,
    "aborted": EXIT_ABORTED,
    "error": EXIT_ERROR,
}


@dataclass
class Phase:
    """preflight, warmup, baseline, fault, recovery (a run with several steps has one
    ``fault`` phase covering them all; steps are told apart by the fault windows)."""

    name: str
    start: float
    end: float | None = None


@dataclass
class FaultWindow:
    """One fault as it happened, with the three times that a release engineer asks for."""

    fault_id: str
    driver: str
    action: str
    agent: str  # ENV/GROUP/AGENT
    description: str
    step: int  # index of the method step (0-based)
    injected_at: float | None = None
    reverted_at: float | None = None
    # fault -> the monitor's first event that saw the agent leave `up`
    detection_s: float | None = None
    # fault -> end of the error stream through the entrypoint (last failed second + 1)
    failover_s: float | None = None
    # revert -> the agent `up` again in the monitor
    recovery_s: float | None = None
    error: str | None = None  # inject or revert failed: one line


@dataclass
class Check:
    """One hypothesis check: a JUnit test case, a row in every report."""

    name: str  # e.g. "success ratio >= 99.9% in every 10 s window"
    phase: str  # the phase it judges, or "run"
    passed: bool
    expected: str
    observed: str
    detail: str = ""  # e.g. the first failed window: "window 4 (30-40 s): 97.1%"


@dataclass
class StateChange:
    """An agent or group state change seen on the monitor's event stream."""

    t: float
    subject: str  # ENV/GROUP/AGENT or ENV/GROUP
    kind: Literal["agent", "group"]
    old: str
    new: str
    reason: str = ""


@dataclass
class Second:
    """The load in one second, all endpoints together (from the Locust timeline)."""

    t: int  # Unix second
    requests: int
    ok: int
    fail: int
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None


@dataclass
class PhaseStats:
    """Per-phase load figures."""

    phase: str
    requests: int
    fail: int
    success_ratio: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


@dataclass
class RunRecord:
    title: str
    experiment: str  # path of the experiment file
    group: str  # ENV/GROUP
    started: float
    ended: float | None = None
    verdict: Verdict = "running"
    exit_code: int | None = None
    reason: str = ""  # why it aborted or errored, one line
    dry_run: bool = False
    # How the run reported itself to the monitor (empty in records from before that), so
    # `agentha chaos recover` can tell the monitor a lost run ended.
    run_id: str = ""
    monitor_url: str = ""
    monitor_token_env: str | None = None  # the variable's name, never its value
    phases: list[Phase] = field(default_factory=list)
    faults: list[FaultWindow] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    stats: list[PhaseStats] = field(default_factory=list)
    timeline: list[Second] = field(default_factory=list)
    states: list[StateChange] = field(default_factory=list)
    guard: list[str] = field(default_factory=list)  # every guard decision, one line each
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRecord:
        data = dict(data)
        data["phases"] = [Phase(**p) for p in data.get("phases", [])]
        data["faults"] = [FaultWindow(**f) for f in data.get("faults", [])]
        data["checks"] = [Check(**c) for c in data.get("checks", [])]
        data["stats"] = [PhaseStats(**s) for s in data.get("stats", [])]
        data["timeline"] = [Second(**s) for s in data.get("timeline", [])]
        data["states"] = [StateChange(**s) for s in data.get("states", [])]
        return cls(**data)

    def write(self, path: Path) -> None:
        """Write atomically: a reader (or a crash) never sees half a file."""
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def read(cls, path: Path) -> RunRecord:
        return cls.from_json(json.loads(path.read_text(encoding="utf-8")))
