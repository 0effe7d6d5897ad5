"""Windowed pass/fail: every threshold must hold in every N-second window of the timeline.

A threshold is ``[ENDPOINT:]METRIC OP VALUE``:

* ``success>=99.9%`` — share of requests that succeeded (``0.999`` works too);
* ``p95<300ms`` — a latency percentile (``p50``, ``p99``, ``p99.9``...) or ``max``, in ``ms``
  or ``s`` (a bare number is milliseconds);
* ``list-orders:p99<1s`` — the same for one endpoint (API check) only.

Windows are cut from the test's first second: ``[0, N)``, ``[N, 2N)``... the last one may be
shorter. A window in which users ran but no request completed fails a success threshold on all
endpoints (an outage where every call hangs must not pass); other thresholds skip windows
without requests (a user picks endpoints at random, so one may sit a window out).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from loadtests.errors import LoadConfigError
from loadtests.timeline import Second, Tally, iso_second, total_of

DEFAULT_THRESHOLDS = ("success>=99.9%", "p95<300ms")
DEFAULT_WINDOW_S = 10

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}
_THRESHOLD = re.compile(
    r"^(?:(?P<endpoint>[a-z0-9][a-z0-9_-]*):)?\s*(?P<metric>success|max|p\d{1,2}(?:\.\d+)?)"
    r"\s*(?P<op>>=|<=|>|<)\s*(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>%|ms|s)?$"
)


@dataclass(frozen=True)
class Threshold:
    text: str
    endpoint: str | None
    metric: str  # "success", "max" or "pNN"
    op: str
    value: float  # a ratio 0..1 for success, milliseconds for latency

    @property
    def is_success(self) -> bool:
        return self.metric == "success"

    def holds(self, observed: float) -> bool:
        return _OPS[self.op](observed, self.value)

    def measure(self, tally: Tally) -> float | None:
        if self.is_success:
            return tally.ok / tally.requests if tally.requests else None
        if self.metric == "max":
            return tally.latency.max()
        return tally.latency.percentile(float(self.metric[1:]) / 100)


def parse_threshold(text: str) -> Threshold:
    match = _THRESHOLD.fullmatch(text.strip())
    if match is None:
        raise LoadConfigError(
            f"threshold {text!r}: expected [ENDPOINT:]METRIC OP VALUE, for example "
            "success>=99.9%, p95<300ms or list-orders:p99<1s"
        )
    metric, unit = match["metric"], match["unit"]
    value = float(match["value"])
    if metric == "success":
        if unit in ("ms", "s"):
            raise LoadConfigError(f"threshold {text!r}: success is a share, like 99.9% or 0.999")
        value = value / 100 if unit == "%" else value
        if not 0 <= value <= 1:
            raise LoadConfigError(f"threshold {text!r}: success must lie in 0..100%")
    else:
        if unit == "%":
            raise LoadConfigError(f"threshold {text!r}: {metric} is a time, like 300ms or 1s")
        if not 0 < float(metric[1:] if metric != "max" else 1) <= 100:
            raise LoadConfigError(f"threshold {text!r}: a percentile lies in p0..p100")
        value = value * 1000 if unit == "s" else value
    return Threshold(text.strip(), match["endpoint"], metric, match["op"], value)


@dataclass(frozen=True)
class Window:
    index: int
    start: int  # elapsed seconds, inclusive
    end: int  # elapsed seconds, exclusive
    first_t: int  # Unix second of its first second
    users: int  # most users seen in it

    def describe(self) -> str:
        first = iso_second(self.first_t)[11:19]
        last = iso_second(self.first_t + self.end - self.start)[11:19]
        return f"window {self.index + 1} ({self.start}-{self.end} s, {first}-{last} UTC)"


@dataclass
class WindowFailure:
    window: Window
    observed: str


@dataclass
class ThresholdResult:
    threshold: Threshold
    windows_checked: int = 0
    failures: list[WindowFailure] = field(default_factory=list)
    worst: str | None = None

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass
class Verdict:
    window_s: int
    windows: int
    results: list[ThresholdResult]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def lines(self) -> list[str]:
        """One line per threshold that held, one per window where one failed."""
        out = []
        for result in self.results:
            text = result.threshold.text
            if result.passed:
                worst = f" (worst {result.worst})" if result.worst else ""
                out.append(
                    f"PASS {text} in all {result.windows_checked} windows of "
                    f"{self.window_s} s{worst}"
                )
            for failure in result.failures:
                out.append(f"FAIL {text} in {failure.window.describe()}: {failure.observed}")
        return out


def _observed(threshold: Threshold, value: float, tally: Tally) -> str:
    if threshold.is_success:
        return f"{value * 100:.2f}% ({tally.fail} of {tally.requests} failed)"
    return f"{value:g} ms ({tally.requests} requests)"


def windows_of(seconds: Sequence[Second], window_s: int) -> list[tuple[Window, list[Second]]]:
    if not seconds:
        return []
    first = seconds[0]
    last_elapsed = seconds[-1].elapsed
    out = []
    for index, start in enumerate(range(first.elapsed, last_elapsed + 1, window_s)):
        end = min(start + window_s, last_elapsed + 1)
        members = [s for s in seconds if start <= s.elapsed < end]
        window = Window(
            index, start, end, first.t + (start - first.elapsed), max(s.users for s in members)
        )
        out.append((window, members))
    return out


def evaluate(seconds: Sequence[Second], thresholds: Sequence[Threshold], window_s: int) -> Verdict:
    """Check every threshold in every window of ``window_s`` seconds."""
    windows = windows_of(seconds, window_s)
    results = []
    for threshold in thresholds:
        result = ThresholdResult(threshold)
        worst: float | None = None
        for window, members in windows:
            tally = total_of(
                tally
                for second in members
                for name, tally in second.endpoints.items()
                if threshold.endpoint in (None, name)
            )
            value = threshold.measure(tally)
            if value is None:
                if threshold.is_success and threshold.endpoint is None and window.users > 0:
                    result.windows_checked += 1
                    result.failures.append(
                        WindowFailure(window, f"no request completed with {window.users} users")
                    )
                continue
            result.windows_checked += 1
            if not threshold.holds(value):
                result.failures.append(WindowFailure(window, _observed(threshold, value, tally)))
            if worst is None or _worse(threshold, value, worst):
                worst = value
        if worst is not None:
            result.worst = f"{worst * 100:.2f}%" if threshold.is_success else f"{worst:g} ms"
        results.append(result)
    return Verdict(window_s, len(windows), results)


def _worse(threshold: Threshold, value: float, than: float) -> bool:
    """Is ``value`` closer to failing than ``than``?"""
    return value < than if threshold.op in (">=", ">") else value > than
