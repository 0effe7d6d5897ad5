"""The run's timeline as one inline SVG, drawn in Python (no scripts, fonts or libraries).

Three stacked panels share one time axis: the success ratio per second, the p95 latency per
second, and one lane per agent (and the group) coloured by the state the monitor reported.
Fault windows are shaded across all panels and labelled by step; phase boundaries are dashed
lines. Long runs are cut into buckets of several seconds (at most ``MAX_POINTS`` points), the
success ratio summed over the bucket and the latency the worst second of it, so a short
outage still shows.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from html import escape

from chaos.record import RunRecord, StateChange

WIDTH = 1000
LEFT = 150  # room for lane labels
RIGHT = 20
PLOT_W = WIDTH - LEFT - RIGHT
LABEL_ROW_H = 14
HEADER_ROWS = 3  # rows for phase and fault labels above the panels
HEADER_H = HEADER_ROWS * LABEL_ROW_H + 4
CHAR_W = 6.2  # a guess at the width of a character at font-size 11, to keep labels apart
SUCCESS_H = 130
LATENCY_H = 110
PANEL_GAP = 18
LANE_H = 14
LANE_GAP = 4
AXIS_H = 28
MAX_POINTS = 500
MAX_LABEL_CHARS = 48

STATE_COLOURS = {
    "up": "#2e7d32",
    "ok": "#2e7d32",
    "degraded": "#f9a825",
    "at_risk": "#ef6c00",
    "paused": "#1565c0",
    "down": "#c62828",
    "unavailable": "#c62828",
    "unknown": "#9e9e9e",
}
OTHER_COLOUR = "#6d4c41"
FAULT_FILL = "#d32f2f"


@dataclass(frozen=True, slots=True)
class Point:
    t: float  # middle of the bucket, Unix seconds
    success: float | None
    p95_ms: float | None


def esc(text: object) -> str:
    return escape(str(text), quote=True)


def time_span(record: RunRecord) -> tuple[float, float]:
    """First and last moment worth drawing: the run, its load, its phases and its faults."""
    starts = [record.started]
    ends = [record.ended or record.started]
    if record.timeline:
        starts.append(record.timeline[0].t)
        ends.append(record.timeline[-1].t + 1)
    for phase in record.phases:
        starts.append(phase.start)
        ends.append(phase.end or phase.start)
    for fault in record.faults:
        ends += [t for t in (fault.injected_at, fault.reverted_at) if t is not None]
    ends += [s.t for s in record.states]
    t0 = min(starts)
    return t0, max(max(ends), t0 + 1)


def bucket_size(span_s: float) -> int:
    return max(1, math.ceil(span_s / MAX_POINTS))


def points(record: RunRecord, t0: float, size: int) -> list[Point]:
    """The timeline cut into buckets of ``size`` seconds (one second each when it fits)."""
    buckets: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    worst: dict[int, float] = {}
    for second in record.timeline:
        key = int((second.t - t0) // size)
        buckets[key][0] += second.requests
        buckets[key][1] += second.ok
        if second.p95_ms is not None:
            worst[key] = max(worst.get(key, 0.0), second.p95_ms)
    out = []
    for key in sorted(buckets):
        requests, ok = buckets[key]
        out.append(
            Point(
                t=t0 + key * size + size / 2,
                success=ok / requests if requests else None,
                p95_ms=worst.get(key),
            )
        )
    return out


def nice_ceiling(value: float) -> float:
    """1, 2, 2.5 or 5 times a power of ten, at least ``value``."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power  # pragma: no cover - the loop always returns


def tick_step(span_s: float) -> float:
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200):
        if span_s / step <= 10:
            return step
    return 3600 * math.ceil(span_s / 36000)


def format_offset(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s" if seconds % 60 else f"{seconds // 60}m"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def _short(text: str) -> str:
    return text if len(text) <= MAX_LABEL_CHARS else text[: MAX_LABEL_CHARS - 1] + "…"


class _Chart:
    def __init__(self, record: RunRecord) -> None:
        self.record = record
        self.t0, self.t1 = time_span(record)
        self.size = bucket_size(self.t1 - self.t0)
        self.parts: list[str] = []
        self.rows_end = [0.0] * HEADER_ROWS  # right end of the last label in each row
        self.lanes = _lanes(record.states)
        self.success_top = HEADER_H
        self.latency_top = self.success_top + SUCCESS_H + PANEL_GAP
        self.lanes_top = self.latency_top + LATENCY_H + PANEL_GAP
        lanes_h = max(1, len(self.lanes)) * (LANE_H + LANE_GAP)
        self.bottom = self.lanes_top + lanes_h
        self.height = self.bottom + AXIS_H

    def x(self, t: float) -> float:
        return LEFT + (t - self.t0) / (self.t1 - self.t0) * PLOT_W

    def add(self, text: str) -> None:
        self.parts.append(text)

    def draw(self) -> str:
        pts = points(self.record, self.t0, self.size)
        self._phases()
        self._faults()
        self._success(pts)
        self._latency(pts)
        self._state_lanes()
        self._axis()
        summary = (
            f"Timeline of {esc(self.record.title)}: success ratio, p95 latency and agent states"
        )
        return (
            f'<svg id="timeline" xmlns="http://www.w3.org/2000/svg" role="img" '
            f'viewBox="0 0 {WIDTH} {self.height}" width="{WIDTH}" height="{self.height}" '
            f'font-family="sans-serif" font-size="11">'
            f"<title>{summary}</title>" + "".join(self.parts) + "</svg>"
        )

    # --- backgrounds: fault windows and phases ---

    def _faults(self) -> None:
        labelled: set[int] = set()
        for fault in sorted(self.record.faults, key=lambda f: (f.injected_at or 0, f.step)):
            if fault.injected_at is None:
                continue
            end = fault.reverted_at if fault.reverted_at is not None else self.t1
            x0, x1 = self.x(fault.injected_at), self.x(end)
            tip = f"{fault.description or fault.action} on {fault.agent}"
            self.add(
                f'<rect class="fault" x="{x0:.1f}" y="{2 * LABEL_ROW_H}" '
                f'width="{max(1.0, x1 - x0):.1f}" height="{self.bottom - 2 * LABEL_ROW_H:.1f}" '
                f'fill="{FAULT_FILL}" fill-opacity="0.12" stroke="{FAULT_FILL}" '
                f'stroke-opacity="0.5"><title>{esc(tip)}</title></rect>'
            )
            if fault.step in labelled:
                continue
            labelled.add(fault.step)
            agents = sorted(
                {f.agent.rsplit("/", 1)[-1] for f in self.record.faults if f.step == fault.step}
            )
            label = _short(f"step {fault.step + 1}: {fault.action} {', '.join(agents)}")
            self._label("fault-label", x0, label, FAULT_FILL)

    def _phases(self) -> None:
        for phase in self.record.phases:
            x = self.x(phase.start)
            self.add(
                f'<line class="phase" x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{self.bottom}" '
                f'stroke="#555" stroke-dasharray="4 3"><title>{esc(phase.name)}</title></line>'
            )
            self._label("phase-label", x, phase.name, "#333")

    def _label(self, cls: str, x: float, text: str, colour: str) -> None:
        """A label in the first header row where it overlaps no other; none if all are full."""
        width = len(text) * CHAR_W + 6
        for row, end in enumerate(self.rows_end):
            if x >= end:
                self.rows_end[row] = x + width
                self.add(
                    f'<text class="{cls}" x="{x + 3:.1f}" y="{row * LABEL_ROW_H + 11}" '
                    f'fill="{colour}">{esc(text)}</text>'
                )
                return

    # --- panels ---

    def _frame(self, top: float, height: float, title: str, ticks: list[tuple[float, str]]) -> None:
        self.add(
            f'<rect x="{LEFT}" y="{top}" width="{PLOT_W}" height="{height}" fill="none" '
            f'stroke="#bbb"/><text class="panel-title" x="{LEFT + 6}" y="{top + 14}" '
            f'font-weight="bold" stroke="#fff" stroke-width="3" paint-order="stroke">'
            f"{esc(title)}</text>"
        )
        for y, label in ticks:
            self.add(
                f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + PLOT_W}" y2="{y:.1f}" '
                f'stroke="#eee"/><text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" '
                f'fill="#555">{esc(label)}</text>'
            )

    def _success(self, pts: list[Point]) -> None:
        top, h = self.success_top, SUCCESS_H

        def y(ratio: float) -> float:
            return top + h - ratio * h

        per = "per second" if self.size == 1 else f"per {self.size} s"
        ticks = [(y(r), f"{r * 100:.0f}%") for r in (0, 0.5, 1.0)]
        self._frame(top, h, f"Success ({per})", ticks)
        self._polyline(
            "success", "#2e7d32", [(p.t, None if p.success is None else y(p.success)) for p in pts]
        )

    def _latency(self, pts: list[Point]) -> None:
        top, h = self.latency_top, LATENCY_H
        values = [p.p95_ms for p in pts if p.p95_ms is not None]
        ceiling = nice_ceiling(max(values, default=0) * 1.05 or 10)

        def y(ms: float) -> float:
            return top + h - min(ms, ceiling) / ceiling * h

        per = "per second" if self.size == 1 else f"worst second of {self.size}"
        ticks = [(y(v), f"{v:g} ms") for v in (0, ceiling / 2, ceiling)]
        self._frame(top, h, f"p95 latency ({per})", ticks)
        self._polyline(
            "p95", "#6a1b9a", [(p.t, None if p.p95_ms is None else y(p.p95_ms)) for p in pts]
        )

    def _polyline(self, name: str, colour: str, values: list[tuple[float, float | None]]) -> None:
        """One polyline per run of points; a bucket without requests leaves a gap."""
        segment: list[str] = []
        runs: list[list[str]] = []
        for t, y in values:
            if y is None:
                if segment:
                    runs.append(segment)
                segment = []
                continue
            segment.append(f"{self.x(t):.1f},{y:.1f}")
        if segment:
            runs.append(segment)
        for run in runs:
            if len(run) == 1:  # a lone point still shows
                cx, cy = run[0].split(",")
                self.add(f'<circle class="{name}" cx="{cx}" cy="{cy}" r="1.5" fill="{colour}"/>')
            else:
                self.add(
                    f'<polyline class="{name}" points="{" ".join(run)}" fill="none" '
                    f'stroke="{colour}" stroke-width="1.5"/>'
                )

    def _state_lanes(self) -> None:
        top = self.lanes_top
        if not self.lanes:
            self.add(
                f'<text x="{LEFT + 4}" y="{top + 11}" fill="#777">'
                "no state changes were recorded</text>"
            )
            return
        for index, (subject, changes) in enumerate(self.lanes):
            y = top + index * (LANE_H + LANE_GAP)
            label = f"group {subject}" if changes[0].kind == "group" else subject.split("/")[-1]
            self.add(
                f'<text class="lane-label" x="{LEFT - 4}" y="{y + 11}" text-anchor="end">'
                f"{esc(_short(label))}</text>"
            )
            for n, change in enumerate(changes):
                end = changes[n + 1].t if n + 1 < len(changes) else self.t1
                x0, x1 = self.x(change.t), self.x(end)
                colour = STATE_COLOURS.get(change.new, OTHER_COLOUR)
                tip = f"{subject}: {change.old} -> {change.new}"
                if change.reason:
                    tip += f" ({change.reason})"
                self.add(
                    f'<rect class="state state-{esc(change.new)}" x="{x0:.1f}" y="{y}" '
                    f'width="{max(1.0, x1 - x0):.1f}" height="{LANE_H}" fill="{colour}">'
                    f"<title>{esc(tip)}</title></rect>"
                )

    def _axis(self) -> None:
        y = self.bottom + 4
        self.add(f'<line x1="{LEFT}" y1="{y}" x2="{LEFT + PLOT_W}" y2="{y}" stroke="#999"/>')
        span = self.t1 - self.t0
        step = tick_step(span)
        offset = 0.0
        while offset <= span + 1e-9:
            x = self.x(self.t0 + offset)
            self.add(
                f'<line x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + 4}" stroke="#999"/>'
                f'<text x="{x:.1f}" y="{y + 16}" text-anchor="middle" fill="#555">'
                f"{esc(format_offset(offset))}</text>"
            )
            offset += step


def _lanes(states: list[StateChange]) -> list[tuple[str, list[StateChange]]]:
    """The group's lane first, then one per agent by id, each with its changes in order."""
    by_subject: dict[str, list[StateChange]] = defaultdict(list)
    for change in states:
        by_subject[change.subject].append(change)
    order = sorted(by_subject, key=lambda s: (by_subject[s][0].kind != "group", s))
    return [(s, sorted(by_subject[s], key=lambda c: c.t)) for s in order]


def timeline_svg(record: RunRecord) -> str:
    """The whole chart as one ``<svg>`` element."""
    return _Chart(record).draw()


def legend_items() -> list[tuple[str, str]]:
    """(state, colour) pairs for the legend under the chart."""
    seen = ["up", "degraded", "paused", "down", "unknown", "at_risk"]
    return [(s, STATE_COLOURS[s]) for s in seen]
