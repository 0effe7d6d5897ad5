"""The probe ledger: the last result of every probe, failure counts and duration histograms.

It sits beside the StateStore (which holds states and transitions) and is read the same way:
by the collector at scrape time and by the API snapshot. Only counters and the latest result
are kept, so its size is fixed by the inventory, not by time.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field

from monitor.probes import ProbeResult

# Upper bounds (seconds) of the probe duration histogram buckets.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(slots=True)
class Histogram:
    buckets: list[int] = field(default_factory=lambda: [0] * len(DURATION_BUCKETS))
    count: int = 0
    total: float = 0.0

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        for i, bound in enumerate(DURATION_BUCKETS):
            if value <= bound:
                self.buckets[i] += 1
                break

    def cumulative(self) -> list[tuple[str, int]]:
        """Prometheus buckets: (upper bound, cumulative count), ending with +Inf."""
        out, running = [], 0
        for bound, count in zip(DURATION_BUCKETS, self.buckets, strict=True):
            running += count
            out.append((repr(bound), running))
        out.append(("+Inf", self.count))
        return out


class ProbeLedger:
    def __init__(self) -> None:
        # target id -> probe -> last result
        self.last: dict[str, dict[str, ProbeResult]] = {}
        # (target id, probe, reason) -> count of failed runs
        self.failures: Counter[tuple[str, str, str]] = Counter()
        # probe -> durations of every run (one histogram per probe kind: bounded cardinality)
        self.durations: dict[str, Histogram] = {}
        # target id -> kept-alive status connections the agent dropped
        self.drops: Counter[str] = Counter()

    def record(self, result: ProbeResult) -> None:
        self.last.setdefault(result.target, {})[result.probe] = result
        if not result.ok:
            self.failures[(result.target, result.probe, result.reason.value)] += 1
        self.durations.setdefault(result.probe, Histogram()).add(result.duration)
        if result.context.get("dropped"):
            self.drops[result.target] += 1

    def results_for(self, target: str) -> dict[str, ProbeResult]:
        return self.last.get(target, {})

    def forget(self, keep: set[str]) -> None:
        """Drop what belongs to targets no longer in the inventory (after a reload)."""
        self.last = {k: v for k, v in self.last.items() if k in keep}
        self.failures = Counter({k: v for k, v in self.failures.items() if k[0] in keep})
        self.drops = Counter({k: v for k, v in self.drops.items() if k in keep})


def result_to_dict(result: ProbeResult) -> dict[str, object]:
    """A probe result as JSON-able data (details flattened from their dataclass)."""
    details = result.details
    return {
        "probe": result.probe,
        "ok": result.ok,
        "reason": result.reason.value,
        "message": result.message,
        "started": result.started,
        "duration": result.duration,
        "http_status": result.http_status,
        "details": dataclasses.asdict(details) if details is not None else None,
        "context": dict(result.context),
    }
