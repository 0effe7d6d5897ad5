"""The agent table: one line per agent, drawn only for the lines on screen.

A Line API widget rather than a DataTable: with ten thousand agents changing every second,
only the twenty or forty visible rows are ever turned into text, and a refresh costs the same
whatever the fleet's size. Columns that do not fit the width are left out, least useful first;
findings take the room that is left.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding, BindingType
from textual.events import Click
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tui import look
from tui.model import AgentRow


@dataclass(frozen=True, slots=True)
class Column:
    key: str  # also the sort key
    title: str
    width: int
    priority: int  # lower is kept longer when the width runs short
    right: bool = False


COLUMNS = (
    Column("state", "state", 10, 0),
    Column("agent", "agent", 20, 0),
    Column("age", "age", 3, 2, right=True),
    Column("latency", "latency", 7, 3, right=True),
    Column("spark", "recent", 8, 6),
    Column("processes", "proc", 4, 5, right=True),
    Column("cert", "cert", 4, 4, right=True),
    Column("tls", "tls", 3, 5),
    Column("findings", "findings", 8, 1),
)
GAP = 1
MAX_AGENT_WIDTH = 40
HEADER_STYLE = Style(bold=True, underline=True)
SORTED_STYLE = Style(bold=True, underline=True, reverse=True)


def fit_columns(width: int, agent_width: int = 20) -> list[Column]:
    """The columns that fit in ``width``; the last one (findings) takes what is left."""
    chosen = [replace(c, width=agent_width) if c.key == "agent" else c for c in COLUMNS]
    while len(chosen) > 2 and sum(c.width + GAP for c in chosen) > width:
        # The least useful goes first; of equals, the rightmost.
        chosen.remove(max(reversed(chosen), key=lambda c: c.priority))
    return chosen


class AgentTable(ScrollView, can_focus=True):
    """Rows come from ``set_rows``; ``now`` is the clock that ages are measured against."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor(-1)", "up", show=False),
        Binding("down,j", "cursor(1)", "down", show=False),
        Binding("pageup", "page(-1)", "page up", show=False),
        Binding("pagedown", "page(1)", "page down", show=False),
        Binding("home", "jump(0)", "first", show=False),
        Binding("end", "jump(-1)", "last", show=False),
        Binding("enter", "open", "details"),
    ]
    DEFAULT_CSS = """
    AgentTable { overflow-x: hidden; }
    """

    cursor: reactive[int] = reactive(0, always_update=True, repaint=False)

    class Opened(Message):
        """The operator asked for one agent's details."""

        def __init__(self, agent_id: str) -> None:
            super().__init__()
            self.agent_id = agent_id

    def __init__(self, now: Callable[[], float], **kwargs) -> None:
        super().__init__(**kwargs)
        self._now = now
        self.rows: list[AgentRow] = []
        self.sort_key = "state"
        self.reverse = False
        self._strip = 0  # characters of the scope to leave out of agent ids
        self._agent_width = 20
        # Set once per redraw by render_lines.
        self._base = Style()
        self._columns = list(COLUMNS)
        self._now_value = 0.0

    # -- data --------------------------------------------------------------------------------

    def set_rows(
        self,
        rows: list[AgentRow],
        sort_key: str,
        reverse: bool,
        scope: str = "",
        longest_id: int = 20,
    ) -> None:
        """Show ``rows``; the cursor stays on the same agent when it is still there.

        Agent ids are shown relative to ``scope`` (the environment or group the tree is on).
        """
        current = self.current_id
        self.rows, self.sort_key, self.reverse = rows, sort_key, reverse
        self._strip = len(scope) + 1 if scope else 0
        longest = longest_id - self._strip
        self._agent_width = max(8, min(MAX_AGENT_WIDTH, longest))
        self._size_to_rows()
        if current is not None:
            self.move_to(current)
        self.cursor = min(self.cursor, max(0, len(rows) - 1))
        self.refresh()

    def move_to(self, agent_id: str) -> None:
        """Put the cursor on an agent, if it is shown."""
        for index, row in enumerate(self.rows):
            if row.id == agent_id:
                self.cursor = index
                return

    @property
    def current_id(self) -> str | None:
        if 0 <= self.cursor < len(self.rows):
            return self.rows[self.cursor].id
        return None

    # -- keys and mouse ----------------------------------------------------------------------

    def watch_cursor(self, cursor: int) -> None:
        body = max(1, self.size.height - 1)
        if cursor < self.scroll_y:
            self.scroll_to(y=cursor, animate=False)
        elif cursor >= self.scroll_y + body:
            self.scroll_to(y=cursor - body + 1, animate=False)
        self.refresh()

    def action_cursor(self, step: int) -> None:
        self.cursor = max(0, min(len(self.rows) - 1, self.cursor + step))

    def action_page(self, direction: int) -> None:
        self.action_cursor(direction * max(1, self.size.height - 2))

    def action_jump(self, where: int) -> None:
        self.cursor = max(0, len(self.rows) - 1) if where < 0 else 0

    def action_open(self) -> None:
        if self.current_id is not None:
            self.post_message(self.Opened(self.current_id))

    def on_click(self, event: Click) -> None:
        index = int(self.scroll_y) + event.y - 1
        if 0 <= index < len(self.rows):
            if index == self.cursor and event.chain > 1:
                self.action_open()
            self.cursor = index

    def on_resize(self) -> None:
        self._size_to_rows()

    def _size_to_rows(self) -> None:
        size = Size(self.size.width, len(self.rows) + 1)
        if size != self.virtual_size:  # a new size means new scrollbars: a layout pass
            self.virtual_size = size

    # -- drawing -----------------------------------------------------------------------------

    def render_lines(self, crop: Region) -> list[Strip]:
        # Looking up the style costs more than drawing a row: once per redraw, not per line.
        self._base = self.rich_style
        self._columns = fit_columns(self.size.width, self._agent_width)
        self._now_value = self._now()
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        columns = self._columns
        if y == 0:
            return self._header(columns, width)
        index = int(self.scroll_y) + y - 1
        if index >= len(self.rows):
            return Strip.blank(width, self._base)
        selected = index == self.cursor
        return self._row(self.rows[index], columns, width, selected)

    def _header(self, columns: list[Column], width: int) -> Strip:
        segments = []
        for column, cell_width in _widths(columns, width):
            title = column.title
            style = HEADER_STYLE
            if column.key == self.sort_key:
                title += "↓" if not self.reverse else "↑"
                style = SORTED_STYLE
            segments += _cell((title, Style()), cell_width, column.right, style)
        return Strip(segments, width).crop_extend(0, width, self._base)

    def _row(self, row: AgentRow, columns: list[Column], width: int, selected: bool) -> Strip:
        base = self._base
        if selected:
            base += Style(reverse=True) if not self.has_focus else Style(bgcolor="blue")
        segments = []
        for column, cell_width in _widths(columns, width):
            value = self._value(row, column.key, cell_width)
            segments += _cell(value, cell_width, column.right, base)
        return Strip(segments, width).crop_extend(0, width, base)

    def _value(self, row: AgentRow, key: str, width: int) -> tuple[str, Style]:
        now = self._now_value
        plain = Style()
        if key == "state":
            symbol, word, style = look.agent_look(row.state)
            return f"{symbol} {word}", style
        if key == "agent":
            return row.id[self._strip :], plain
        if key == "age":
            return look.age(now - row.probed if row.probed is not None else None), plain
        if key == "latency":
            return look.latency(row.latency), plain
        if key == "spark":
            return look.sparkline(row.history, width), Style(color="magenta")
        if key == "processes":
            return ("" if row.processes is None else str(row.processes)), plain
        if key == "cert":
            days = row.cert_days(now)
            return look.days(days), look.days_style(days)
        if key == "tls":
            return look.tls_short(row.tls_version), plain
        if row.faults:  # a chaos fault explains the findings beside it: first, in its own colour
            return " ".join([look.fault_mark(row.faults), *row.findings]), look.FAULT_STYLE
        return ",".join(row.findings), Style(color="yellow")


def _widths(columns: list[Column], width: int) -> list[tuple[Column, int]]:
    fixed = sum(c.width + GAP for c in columns[:-1])
    last = max(columns[-1].width, width - fixed - GAP)
    return [(c, c.width) for c in columns[:-1]] + [(columns[-1], last)]


def _cell(value: tuple[str, Style], width: int, right: bool, base: Style) -> list[Segment]:
    text, style = value
    if cell_len(text) > width:
        text = set_cell_size(text, width - 1) + "…"
    padding = Segment(" " * (width - cell_len(text)), base)
    content = Segment(text, base + style)
    cells = [padding, content] if right else [content, padding]
    return [*cells, Segment(" " * GAP, base)]
