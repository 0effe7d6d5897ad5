"""The per-second timeline: what was recorded, how it is written, how it is read back.

One JSON object per line and per second of the test, in order::

    {"t": 1764459300, "time": "2026-11-29T23:35:00Z", "elapsed": 3, "users": 10,
     "total": {"requests": 31, "ok": 30, "fail": 1, "p50_ms": 4.1, "p95_ms": 7.9, ...},
     "endpoints": {"list-orders": {"requests": 11, "ok": 10, "fail": 1, "p50_ms": 4.2,
                                  "p95_ms": 8.1, "p99_ms": 9, "max_ms": 9,
                                  "latency_hist": {"4.2": 6, "8.1": 5}}}}

``t`` is the Unix second in which requests completed, ``elapsed`` counts from the test's
first second. A second with no requests still has its line, so gaps are visible. When a
worker's report reaches the master after that second was written, one more line with the
same ``t`` and ``"late": true`` carries the rest: readers add lines of the same second up
(``read_timeline`` does). Latency histograms (milliseconds, 2 significant digits, failures
included, as in Locust's own figures) let any window's percentiles be computed exactly.

This module is pure: the Locust plugin (``loadtests.timeline_plugin``) feeds it, and the
command line reads it back without importing Locust.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from loadtests.errors import LoadConfigError
from loadtests.latency import REPORTED, Histogram

# A worker report as sent to the master: [second, endpoint, ok, fail, [[bucket_ms, count]...]].
WireRow = list[Any]


@dataclass
class Tally:
    """Requests of one endpoint (or all) in one second or window."""

    ok: int = 0
    fail: int = 0
    latency: Histogram = field(default_factory=Histogram)

    @property
    def requests(self) -> int:
        return self.ok + self.fail

    def add(self, other: Tally) -> None:
        self.ok += other.ok
        self.fail += other.fail
        self.latency.merge(other.latency)

    def to_json(self, with_histogram: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"requests": self.requests, "ok": self.ok, "fail": self.fail}
        for key, q in REPORTED:
            out[key] = self.latency.percentile(q)
        out["max_ms"] = self.latency.max()
        if with_histogram:
            out["latency_hist"] = self.latency.to_json()
        return out


def total_of(tallies: Iterable[Tally]) -> Tally:
    total = Tally()
    for tally in tallies:
        total.add(tally)
    return total


class TimelineRecorder:
    """Requests by completion second and endpoint, until they are written or sent on."""

    def __init__(self) -> None:
        self._seconds: dict[int, dict[str, Tally]] = {}

    def record(self, second: int, endpoint: str, ok: bool, ms: float) -> None:
        tally = self._seconds.setdefault(second, {}).setdefault(endpoint, Tally())
        if ok:
            tally.ok += 1
        else:
            tally.fail += 1
        tally.latency.add(ms)

    def drain(self) -> list[WireRow]:
        """Everything recorded so far, as plain lists for a worker report; then forget it."""
        rows = [
            [second, name, t.ok, t.fail, [[v, c] for v, c in t.latency.counts.items()]]
            for second, endpoints in self._seconds.items()
            for name, t in endpoints.items()
        ]
        self._seconds = {}
        return rows

    def merge(self, rows: Iterable[WireRow]) -> None:
        """Add a worker's report (``drain`` output)."""
        for second, name, ok, fail, pairs in rows:
            tally = self._seconds.setdefault(int(second), {}).setdefault(str(name), Tally())
            tally.add(Tally(int(ok), int(fail), Histogram.from_pairs(pairs)))

    def seconds(self) -> list[int]:
        return sorted(self._seconds)

    def pop(self, second: int) -> dict[str, Tally]:
        return self._seconds.pop(second, {})


def iso_second(second: int) -> str:
    """``2026-11-29T23:35:00Z``."""
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class TimelineWriter:
    """Writes closed seconds in order, one line each, flushed at once (others may tail it)."""

    def __init__(self, out: IO[str], start: int) -> None:
        self.out = out
        self.start = start
        self.next = start  # the first second not written yet

    def write_until(self, recorder: TimelineRecorder, end: int, users: Mapping[int, int]) -> None:
        """Write every second before ``end``, and late data for seconds already written."""
        for second in recorder.seconds():
            if second < self.next:
                self._line(second, recorder.pop(second), users, late=True)
        while self.next < end:
            self._line(self.next, recorder.pop(self.next), users, late=False)
            self.next += 1
        self.out.flush()

    def finish(self, recorder: TimelineRecorder, users: Mapping[int, int]) -> None:
        """Write everything that is left, up to the last second with data."""
        seconds = recorder.seconds()
        self.write_until(recorder, max([self.next - 1, *seconds]) + 1, users)

    def _line(
        self, second: int, endpoints: dict[str, Tally], users: Mapping[int, int], late: bool
    ) -> None:
        line: dict[str, Any] = {
            "t": second,
            "time": iso_second(second),
            "elapsed": second - self.start,
            "users": users.get(second, 0),
            "total": total_of(endpoints.values()).to_json(with_histogram=False),
            "endpoints": {
                name: endpoints[name].to_json(with_histogram=True) for name in sorted(endpoints)
            },
        }
        if late:
            line["late"] = True
        self.out.write(json.dumps(line, separators=(",", ":")) + "\n")


@dataclass
class Second:
    """One second of a timeline read back (late lines added in)."""

    t: int
    elapsed: int
    users: int
    endpoints: dict[str, Tally]

    @property
    def time(self) -> str:
        return iso_second(self.t)


def read_timeline(path: Path) -> list[Second]:
    """The timeline's seconds in order; a malformed line is a ``LoadConfigError`` naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LoadConfigError(f"{path}: cannot read the timeline: {exc.strerror}") from None
    seconds: dict[int, Second] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        _merge_line(seconds, raw, path, number)
    return [seconds[t] for t in sorted(seconds)]


class TimelineTail:
    """A timeline followed while Locust writes it: each ``read()`` parses only what was added
    since the last one (a half-written last line waits for the next read), so following a
    long run costs the same every second."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seconds: list[Second] = []  # in order; late lines are added into their second
        self._by_t: dict[int, Second] = {}
        self._offset = 0
        self._partial = b""
        self._lines = 0

    def read(self) -> list[Second]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return self.seconds
        except OSError as exc:
            raise LoadConfigError(
                f"{self.path}: cannot read the timeline: {exc.strerror}"
            ) from None
        self._offset += len(data)
        complete, _, self._partial = (self._partial + data).rpartition(b"\n")
        for raw in complete.decode("utf-8", "replace").splitlines() if complete else ():
            self._lines += 1
            second = _merge_line(self._by_t, raw, self.path, self._lines)
            if second is not None:
                self.seconds.append(second)
        return self.seconds


def _merge_line(seconds: dict[int, Second], raw: str, path: Path, number: int) -> Second | None:
    """Add one line into ``seconds``; returns the second when the line started a new one."""
    if not raw.strip():
        return None
    try:
        line = json.loads(raw)
        second = seconds.get(line["t"])
        endpoints = {
            str(name): Tally(int(e["ok"]), int(e["fail"]), Histogram.from_json(e["latency_hist"]))
            for name, e in line["endpoints"].items()
        }
        if second is None:
            second = seconds[line["t"]] = Second(
                int(line["t"]), int(line["elapsed"]), int(line["users"]), endpoints
            )
            return second
        for name, tally in endpoints.items():
            second.endpoints.setdefault(name, Tally()).add(tally)
        return None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise LoadConfigError(
            f"{path}:{number}: not a timeline line; expected JSON with t, elapsed, users "
            "and endpoints"
        ) from None


def totals(seconds: Iterable[Second]) -> dict[str, Tally]:
    """Per-endpoint totals over the given seconds."""
    out: dict[str, Tally] = {}
    for second in seconds:
        for name, tally in second.endpoints.items():
            out.setdefault(name, Tally()).add(tally)
    return out
