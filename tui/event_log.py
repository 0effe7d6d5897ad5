"""The live event log: the latest transitions, newest at the bottom.

It draws straight from the model's bounded event list, so a burst of thousands of events
costs one redraw of the visible lines, not one widget update per event.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from rich.segment import Segment
from rich.style import Style
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

from monitor.chaos_board import split_actions
from tui import look
from tui.chaos import verdict_of
from tui.model import FleetModel

TIME_STYLE = Style(dim=True)
NOTE_STYLE = Style(color="magenta", italic=True)


def event_segments(event: Mapping[str, Any]) -> list[Segment]:
    """One event as ``HH:MM:SS ✖ down  agent test/orders/orders-1  was up: refused``.

    Chaos runs read ``↯ fault  chaos RUN  was baseline: EXPERIMENT on GROUP`` and the faults
    they hold ``↯ stop  fault AGENT  was none: chaos run RUN``.
    """
    stamp = time.strftime("%H:%M:%S", time.localtime(float(event.get("time") or 0)))
    segments = [Segment(f"{stamp} ", TIME_STYLE)]
    kind = event.get("kind")
    if kind == "note":
        return [*segments, Segment(str(event.get("reason", "")), NOTE_STYLE)]
    new, old = str(event.get("new", "")), str(event.get("old", ""))
    reason = str(event.get("reason", ""))
    symbol, word, style = value_look(str(kind), new, reason)
    old_word = value_look(str(kind), old, "")[1] if kind != "fault" else old
    segments.append(Segment(f"{symbol} {word:<11}", style))
    segments.append(Segment(f" {kind} {event.get('id', '')}"))
    segments.append(Segment(f"  was {old_word}: {reason}", TIME_STYLE))
    return segments


def value_look(kind: str, value: str, reason: str) -> tuple[str, str, Style]:
    """How an event's old or new value looks, by the event's kind."""
    if kind == "agent":
        return look.agent_look(value)
    if kind == "group":
        return look.group_look(value)
    if kind == "chaos":  # a run's phase; its end shows the verdict
        return look.chaos_look(value, verdict_of(value, reason))
    if kind == "fault":  # the actions a run holds on the agent
        return look.fault_look(split_actions(value))
    return look.other_look(value)


class EventLog(Widget):
    """The newest events that fit, newest at the bottom; an agent's details list its own."""

    def __init__(self, model: FleetModel, **kwargs) -> None:
        super().__init__(**kwargs)
        self.model = model
        self._shown = -1
        self._base = Style()

    def update_events(self) -> None:
        """Redraw if events came in since the last time."""
        if self.model.events_added != self._shown:
            self._shown = self.model.events_added
            self.refresh()

    def render_lines(self, crop: Region) -> list[Strip]:
        self._base = self.rich_style  # once per redraw: the lookup is not cheap
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        events = self.model.events
        index = len(events) - self.size.height + y
        if not 0 <= index < len(events):
            return Strip.blank(width, self._base)
        return Strip(event_segments(events[index]), None).crop_extend(0, width, self._base)
