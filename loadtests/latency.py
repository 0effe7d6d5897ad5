"""Latency histograms that merge exactly: response times kept in buckets of 2 significant digits.

Percentiles cannot be averaged across workers or seconds, but bucket counts can be added, so
every per-second, per-worker and per-window figure comes from one of these. A bucket holds
times within about 5 % of its value (4.37 ms -> 4.4, 1234 ms -> 1200), as Locust rounds its
own response times; a percentile is the nearest-rank bucket value.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping

# Percentiles written for every endpoint and second.
REPORTED = (("p50_ms", 0.50), ("p95_ms", 0.95), ("p99_ms", 0.99))


def bucket(ms: float) -> float:
    """``ms`` rounded to 2 significant digits (0 for anything not positive)."""
    if ms <= 0 or math.isnan(ms):
        return 0.0
    digits = 1 - math.floor(math.log10(ms))
    return round(ms, digits)


class Histogram:
    """Counts per latency bucket (milliseconds)."""

    __slots__ = ("counts",)

    def __init__(self, counts: Mapping[float, int] | None = None) -> None:
        self.counts: Counter[float] = Counter(counts or {})

    def add(self, ms: float, count: int = 1) -> None:
        self.counts[bucket(ms)] += count

    def merge(self, other: Histogram | Mapping[float, int]) -> None:
        self.counts.update(other.counts if isinstance(other, Histogram) else other)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def percentile(self, q: float) -> float | None:
        """Nearest-rank percentile (``q`` in 0..1); None when empty."""
        total = self.total
        if total == 0:
            return None
        rank = max(1, math.ceil(q * total))
        seen = 0
        for value in sorted(self.counts):
            seen += self.counts[value]
            if seen >= rank:
                return value
        return max(self.counts)

    def max(self) -> float | None:
        return max(self.counts) if self.counts else None

    def to_json(self) -> dict[str, int]:
        return {f"{value:g}": count for value, count in sorted(self.counts.items())}

    @classmethod
    def from_json(cls, data: Mapping[str, int]) -> Histogram:
        return cls({float(value): int(count) for value, count in data.items()})

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[float, int]]) -> Histogram:
        hist = cls()
        for value, count in pairs:
            hist.counts[float(value)] += int(count)
        return hist
