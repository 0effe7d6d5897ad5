"""The live event log: the latest transitions, newest at the bottom.

It draws straight from the model's bounded event list, so a burst of thousands of events
costs one redraw of the visible lines, not one widget update per event. It follows the newest
event unless the operator has scrolled up to read.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from rich.segment import Segment
from rich.style import Style
from textual.geometry import Region, Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tui import look
from tui.model import FleetModel

TIME_STYLE = Style(dim=True)
NOTE_STYLE = Style(color="magenta", italic=True)


def event_segments(event: Mapping[str, Any]) -> list[Segment]:
    """One event as ``HH:MM:SS ✖ down  test/orders/orders-1  (was up: refused)``."""
    stamp = time.strftime("%H:%M:%S", time.localtime(float(event.get("time") or 0)))
    segments = [Segment(f"{stamp} ", TIME_STYLE)]
    kind = event.get("kind")
    if kind == "note":
        return [*segments, Segment(str(event.get("reason", "")), NOTE_STYLE)]
    new, old = str(event.get("new", "")), str(event.get("old", ""))
    symbol, word, style = look.agent_look(new) if kind == "agent" else look.group_look(new)
    old_word = (look.agent_look(old) if kind == "agent" else look.group_look(old))[1]
    segments.append(Segment(f"{symbol} {word:<11}", style))
    segments.append(Segment(f" {kind} {event.get('id', '')}"))
    segments.append(Segment(f"  was {old_word}: {event.get('reason', '')}", TIME_STYLE))
    return segments


class EventLog(ScrollView):
    DEFAULT_CSS = """
    EventLog { overflow-x: hidden; }
    """

    def __init__(self, model: FleetModel, **kwargs) -> None:
        super().__init__(**kwargs)
        self.model = model
        self._shown = -1
        self._base = Style()
        self.following = True

    def update_events(self) -> None:
        """Redraw if the model has changed; stay at the bottom if we were there."""
        if self.model.events_added == self._shown:
            return
        self._shown = self.model.events_added
        size = Size(self.size.width, len(self.model.events))
        if size != self.virtual_size:
            self.virtual_size = size
        if self.following:
            self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True)
        self.refresh()

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        # Scrolled up to read: stop following; back at the bottom: follow again.
        self.following = round(new) >= self.max_scroll_y

    def render_lines(self, crop: Region) -> list[Strip]:
        self._base = self.rich_style  # once per redraw: the lookup is not cheap
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        index = int(self.scroll_y) + y
        events = self.model.events
        if index >= len(events):
            return Strip.blank(width, self._base)
        return Strip(event_segments(events[index]), None).crop_extend(0, width, self._base)
