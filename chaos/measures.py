"""Measures and hypothesis checks of a run, from the Locust timeline, monitor events and faults.

- Phase figures and the windowed thresholds reuse the load package's judgement
  (``loadtests.thresholds.evaluate``) on the seconds of each phase, so a chaos run and
  ``agentha load run`` judge a window the same way.
- Detection: fault -> the monitor's first event that takes the agent out of ``up``.
- Failover: fault -> the end of the error stream through the entrypoint (the last second
  with a failed request while the fault was applied, plus that second); 0 when no request
  failed.
- Recovery: revert -> the agent ``up`` again in the monitor (0 when it never left ``up``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from chaos.guard import TAKES_TRAFFIC
from chaos.record import Check, FaultWindow, Phase, PhaseStats, RunRecord, StateChange
from chaos.record import Second as RecordSecond
from loadtests.thresholds import Threshold, evaluate
from loadtests.timeline import Second, total_of


def record_seconds(seconds: Iterable[Second]) -> list[RecordSecond]:
    out = []
    for second in seconds:
        total = total_of(second.endpoints.values())
        out.append(
            RecordSecond(
                t=second.t,
                requests=total.requests,
                ok=total.ok,
                fail=total.fail,
                p50_ms=total.latency.percentile(0.50),
                p95_ms=total.latency.percentile(0.95),
                p99_ms=total.latency.percentile(0.99),
            )
        )
    return out


def in_phase(seconds: Sequence[Second], phase: Phase) -> list[Second]:
    """The seconds of a phase.

    A second that straddles the start or end of the fault phase belongs to the fault phase:
    a call refused a moment after the fault began must not count against the baseline, nor
    one that failed just before the revert against the recovery. Other phases keep only
    the seconds wholly inside them.
    """
    end = phase.end if phase.end is not None else float("inf")
    if phase.name == "fault":
        return [s for s in seconds if s.t < end and s.t + 1 > phase.start]
    return [s for s in seconds if phase.start <= s.t and s.t + 1 <= end]


def phase_stats(phase: str, seconds: Sequence[Second]) -> PhaseStats:
    total = total_of(tally for s in seconds for tally in s.endpoints.values())
    return PhaseStats(
        phase=phase,
        requests=total.requests,
        fail=total.fail,
        success_ratio=total.ok / total.requests if total.requests else None,
        p50_ms=total.latency.percentile(0.50),
        p95_ms=total.latency.percentile(0.95),
        p99_ms=total.latency.percentile(0.99),
    )


def threshold_checks(
    phase: str, seconds: Sequence[Second], thresholds: Sequence[Threshold], window_s: int
) -> list[Check]:
    """One check per threshold: it must hold in every window of the phase."""
    if not seconds:
        return [
            Check(
                name=f"{t.text} in every {window_s} s window ({phase})",
                phase=phase,
                passed=False,
                expected=t.text,
                observed="no load recorded in this phase",
            )
            for t in thresholds
        ]
    verdict = evaluate(seconds, thresholds, window_s)
    checks = []
    for result in verdict.results:
        detail = ""
        if result.failures:
            first = result.failures[0]
            detail = f"{first.window.describe()}: {first.observed}"
            if len(result.failures) > 1:
                detail += f" (and {len(result.failures) - 1} more windows)"
        checks.append(
            Check(
                name=f"{result.threshold.text} in every {window_s} s window ({phase})",
                phase=phase,
                passed=result.passed,
                expected=result.threshold.text,
                observed=f"worst {result.worst}" if result.worst else "no request completed",
                detail=detail,
            )
        )
    return checks


def fault_times(
    window: FaultWindow, seconds: Sequence[RecordSecond], states: Sequence[StateChange]
) -> None:
    """Fill detection, failover and recovery times of one fault window in place.

    Detection is the agent's first state change after the fault; recovery is its return to
    a state that takes traffic (``up`` or ``degraded``), or to the state it had before the
    fault if that was neither. An agent with a planted finding is ``degraded`` before and
    after: that counts as back.
    """
    if window.injected_at is None:
        return
    start = window.injected_at
    end = window.reverted_at if window.reverted_at is not None else float("inf")
    agent_changes = [s for s in states if s.kind == "agent" and s.subject == window.agent]
    before = next((s.new for s in reversed(agent_changes) if s.t < start), "up")
    detected = next((s for s in agent_changes if s.t >= start and s.new != before), None)
    if detected is not None and detected.t <= end + 1:
        window.detection_s = round(detected.t - start, 3)
    failed = [s.t for s in seconds if s.fail and start <= s.t + 0.5 < end]
    window.failover_s = round(max(0.0, failed[-1] + 1 - start), 3) if failed else 0.0
    if window.reverted_at is None:
        return
    if window.detection_s is None:
        window.recovery_s = 0.0
        return
    home = TAKES_TRAFFIC if before in TAKES_TRAFFIC else {before}
    back = next((s for s in agent_changes if s.t >= window.reverted_at and s.new in home), None)
    if back is not None:
        window.recovery_s = round(back.t - window.reverted_at, 3)


def time_checks(
    faults: Sequence[FaultWindow],
    *,
    max_detection_s: float | None,
    max_failover_s: float | None,
    max_recovery_s: float | None,
) -> list[Check]:
    """One check per fault and limit: the worst case is what a release engineer needs."""
    checks = []
    limits = (
        ("detection", "detection_s", max_detection_s, "not detected by the monitor"),
        ("failover", "failover_s", max_failover_s, "no figure"),
        ("recovery", "recovery_s", max_recovery_s, "not up again in the monitor"),
    )
    for label, attr, limit, missing in limits:
        if limit is None:
            continue
        for window in faults:
            if window.injected_at is None:
                continue
            value = getattr(window, attr)
            checks.append(
                Check(
                    name=f"{label} of {window.description} within {limit:g} s",
                    phase="fault" if label != "recovery" else "recovery",
                    passed=value is not None and value <= limit,
                    expected=f"<= {limit:g} s",
                    observed=missing if value is None else f"{value:g} s",
                )
            )
    return checks


def group_status_check(
    record: RunRecord, phase: Phase, allowed: Sequence[str], status_before: str
) -> Check:
    """The group's status as the monitor reported it must stay allowed during the phase."""
    end = phase.end if phase.end is not None else float("inf")
    changes = [s for s in record.states if s.kind == "group" and s.subject == record.group]
    status = status_before
    seen = {status_before}
    bad: StateChange | None = None
    for change in changes:
        if change.t < phase.start:
            status = change.new
            seen = {status}
            continue
        if change.t >= end:
            break
        seen.add(change.new)
        if change.new not in allowed and bad is None:
            bad = change
    passed = status in allowed and bad is None
    detail = ""
    if bad is not None:
        detail = f"{bad.new} at +{bad.t - phase.start:.1f} s: {bad.reason}"
    return Check(
        name=f"group status stays {' or '.join(allowed)} ({phase.name})",
        phase=phase.name,
        passed=passed,
        expected=" or ".join(allowed),
        observed=", ".join(sorted(seen)),
        detail=detail,
    )
