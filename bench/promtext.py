"""A few figures out of Prometheus text exposition: counters and one histogram's buckets.

Only the metrics asked for are parsed (the monitor's /metrics holds dozens of series per
agent); a label-less sample is keyed by its name, a histogram bucket by its ``le`` bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Samples:
    values: dict[str, float]  # label-less samples, and sums of labelled ones, by name
    buckets: dict[float, float]  # the histogram's cumulative buckets by upper bound

    def delta(self, earlier: Samples) -> Samples:
        return Samples(
            {k: v - earlier.values.get(k, 0.0) for k, v in self.values.items()},
            {k: v - earlier.buckets.get(k, 0.0) for k, v in self.buckets.items()},
        )

    def get(self, name: str) -> float:
        return self.values.get(name, 0.0)


def parse(text: str, names: set[str], histogram: str) -> Samples:
    """Values of ``names`` (labelled series summed) and the buckets of ``histogram``."""
    values: dict[str, float] = {}
    buckets: dict[float, float] = {}
    bucket_name = f"{histogram}_bucket"
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        head, _, value = line.rpartition(" ")
        name = head.split("{", 1)[0]
        if name == bucket_name:
            bound = head.split('le="', 1)[1].split('"', 1)[0]
            buckets[math.inf if bound == "+Inf" else float(bound)] = float(value)
        elif name in names:
            values[name] = values.get(name, 0.0) + float(value)
    return Samples(values, buckets)


def quantile(buckets: dict[float, float], q: float) -> float | None:
    """PromQL's ``histogram_quantile``: linear interpolation within the bucket that holds q."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # beyond the last finite bound: that bound is all we know
            if count == lower_count:
                return bound
            share = (rank - lower_count) / (count - lower_count)
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return bounds[-1]


def share_at_most(buckets: dict[float, float], bound: float) -> float | None:
    """Fraction of observations at most ``bound`` (which must be a bucket bound): exact."""
    total = buckets.get(math.inf, 0.0)
    if total <= 0 or bound not in buckets:
        return None
    return buckets[bound] / total
