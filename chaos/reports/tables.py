"""The figures every report shows, as rows of short strings: checks, phases, faults.

Markdown and HTML lay the same rows out in their own way, so both say the same thing.
Times in a run are shown as seconds since the run started (``+12.0 s``).
"""

from __future__ import annotations

import math

from chaos.record import RunRecord

Table = tuple[list[str], list[list[str]]]

NONE = "-"


def verdict_text(record: RunRecord) -> str:
    """``PASS (exit code 0)``; the reason follows for an aborted or failed run."""
    text = record.verdict.upper()
    if record.exit_code is not None:
        text += f" (exit code {record.exit_code})"
    if record.dry_run:
        text += ", dry run"
    return text


def seconds(value: float | None) -> str:
    return NONE if value is None else f"{value:.1f} s"


def at(record: RunRecord, t: float | None) -> str:
    """A moment of the run as seconds since its start."""
    return NONE if t is None else f"+{t - record.started:.1f} s"


def ratio(value: float | None) -> str:
    if value is None:
        return NONE
    if value >= 1:
        return "100%"
    # Rounded down: 99.999% must not read as 100%.
    return f"{math.floor(value * 10000) / 100:.2f}%"


def millis(value: float | None) -> str:
    return NONE if value is None else f"{value:.0f} ms"


def checks_table(record: RunRecord) -> Table:
    headers = ["Check", "Phase", "Result", "Expected", "Observed", "Detail"]
    rows = [
        [
            c.name,
            c.phase,
            "pass" if c.passed else "FAIL",
            c.expected,
            c.observed,
            c.detail or NONE,
        ]
        for c in record.checks
    ]
    return headers, rows


def stats_table(record: RunRecord) -> Table:
    headers = ["Phase", "Requests", "Failed", "Success", "p50", "p95", "p99"]
    rows = [
        [
            s.phase,
            str(s.requests),
            str(s.fail),
            ratio(s.success_ratio),
            millis(s.p50_ms),
            millis(s.p95_ms),
            millis(s.p99_ms),
        ]
        for s in record.stats
    ]
    return headers, rows


def faults_table(record: RunRecord) -> Table:
    headers = [
        "Step",
        "Fault",
        "Agent",
        "Injected",
        "Reverted",
        "Detection",
        "Failover",
        "Recovery",
        "Error",
    ]
    rows = [
        [
            str(f.step + 1),
            f.description or f"{f.action} ({f.driver})",
            f.agent,
            at(record, f.injected_at),
            at(record, f.reverted_at),
            seconds(f.detection_s),
            seconds(f.failover_s),
            seconds(f.recovery_s),
            f.error or NONE,
        ]
        for f in record.faults
    ]
    return headers, rows


def phases_table(record: RunRecord) -> Table:
    headers = ["Phase", "Start", "End", "Length"]
    rows = [
        [
            p.name,
            at(record, p.start),
            at(record, p.end),
            seconds(None if p.end is None else p.end - p.start),
        ]
        for p in record.phases
    ]
    return headers, rows
