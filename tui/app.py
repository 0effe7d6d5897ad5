"""The operators' dashboard: ``DashboardApp`` and ``run_dashboard``.

Data comes in through a feed (the monitor's HTTP API by default) in a Textual worker and is
written into the ``FleetModel``; the screen is redrawn from the model a moment later, so a burst
of events becomes one redraw. Keys act on the view at once.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Footer, Input, Static, Tree

from tui.agent_table import AgentTable
from tui.event_log import EventLog
from tui.feed import Feed, HttpFeed
from tui.fleet_tree import FleetTree
from tui.header import banner, chaos_lines, summary
from tui.model import SORT_KEYS, STATE_FILTERS, FleetModel, Query
from tui.screens import DetailScreen, HelpScreen

REFRESH_DELAY = 0.1  # seconds from new data to redraw: bursts of events become one redraw
REDRAW_GAP = 0.5  # seconds between redraws for new data at the least (keys redraw at once)
BUSY_GAP = 1.0  # the same while events pour in: nobody reads faster, the CPU is better spent
BUSY_RATE = 100.0  # events a second from which the stream counts as pouring
TICK = 1.0  # ages and the lost-connection banner move on once a second


class DashboardApp(App[None]):
    CSS_PATH = "dashboard.tcss"
    TITLE = "agentha"
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-narrow"), (100, "-wide")]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark", "help", "help"),
        Binding("slash", "search", "search"),
        Binding("f", "cycle_state", "filter"),
        Binding("s", "cycle_sort", "sort"),
        Binding("S", "reverse", "reverse", show=False),
        Binding("a", "show_all", "all"),
        Binding("l", "toggle_log", "log"),
        Binding("c", "chaos_scope", "chaos", show=False),
        Binding("escape", "leave_search", show=False),
        Binding("q", "quit", "quit"),
        Binding("ctrl+c", "quit", show=False, priority=True),
    ]

    def __init__(self, feed: Feed, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.feed = feed
        self.model = FleetModel(clock)
        self.query_state = Query()
        self.online = False
        self.connection_detail = ""
        self._ever_online = False
        self._refresh_pending = False
        self._last_redraw = 0.0
        self._redraw_gap = REDRAW_GAP
        self._events_since_redraw = 0

    def compose(self) -> ComposeResult:
        yield Static(id="summary")
        yield Static(id="banner")
        yield Static(id="chaos")
        with Horizontal(id="filters"):
            yield Input(placeholder="/ search agents", compact=True, id="search")
            yield Static(id="filter-state")
        with Horizontal(id="body"):
            yield FleetTree(self.model, id="tree")
            yield AgentTable(self.model.clock, id="agents")
        yield EventLog(self.model, id="events")
        yield Footer()

    def on_mount(self) -> None:
        # Kept: while another screen is on top, query_one() would search that one.
        self.agent_table = self.query_one("#agents", AgentTable)
        self.fleet_tree = self.query_one("#tree", FleetTree)
        self.event_log = self.query_one("#events", EventLog)
        self.search_box = self.query_one("#search", Input)
        self.event_log.border_title = "events"
        self.summary_line = self.query_one("#summary", Static)
        self.lost_banner = self.query_one("#banner", Static)
        self.filter_line = self.query_one("#filter-state", Static)
        self.lost_banner.display = False
        self.chaos_banner = self.query_one("#chaos", Static)
        self.chaos_banner.display = False
        self.agent_table.focus()
        self.set_interval(TICK, self._tick)
        self.redraw()
        self._run_feed()

    @work(exclusive=True, group="feed")
    async def _run_feed(self) -> None:
        await self.feed.run(self)

    # -- the feed writes here (FeedSink) -------------------------------------------------------

    async def feed_snapshot(self, snapshot: Mapping[str, Any]) -> None:
        for _ in self.model.snapshot_steps(snapshot):
            await asyncio.sleep(0)  # a key pressed meanwhile is handled now, not after
        self._schedule()

    def feed_event(self, event: Mapping[str, Any]) -> None:
        self.model.apply_event(event)
        self._events_since_redraw += 1
        self._schedule()

    def feed_connection(self, online: bool, detail: str) -> None:
        self.online, self.connection_detail = online, detail
        if online:
            self.model.note(
                "reconnected to the monitor" if self._ever_online else "connected to the monitor"
            )
            self._ever_online = True
        else:
            self.model.note(f"monitor connection lost: {detail}")
        self._schedule()

    def feed_note(self, text: str) -> None:
        self.model.note(text)
        self._schedule()

    # -- drawing -------------------------------------------------------------------------------

    def _schedule(self) -> None:
        if not self._refresh_pending:
            self._refresh_pending = True
            wait = self._redraw_gap - (time.monotonic() - self._last_redraw)
            self.set_timer(max(REFRESH_DELAY, wait), self.redraw)

    def _tick(self) -> None:
        # Ages move on and the banner counts even when no data comes in.
        if time.monotonic() - self._last_redraw >= TICK * 0.9:
            self.redraw()

    def redraw(self) -> None:
        """Bring every widget up to the model and the query."""
        self._refresh_pending = False
        now = time.monotonic()
        rate = self._events_since_redraw / max(now - self._last_redraw, 0.001)
        self._redraw_gap = BUSY_GAP if rate >= BUSY_RATE else REDRAW_GAP
        self._last_redraw, self._events_since_redraw = now, 0
        stack = self.screen_stack
        if not stack:  # a timer that fired while the app shuts down
            return
        model, query = self.model, self.query_state
        rows = model.rows(query)
        self.agent_table.set_rows(rows, query.sort, query.reverse, query.scope, model.longest_id())
        _update(self.summary_line, summary(model, self.online, self.size.width))
        self._draw_banner()
        self._draw_chaos()
        scope = query.scope or "fleet"
        _update(
            self.filter_line,
            Text(
                f" {scope} · state {query.state} · sort {query.sort}"
                f"{' ↑' if query.reverse else ''} · {len(rows)}/{len(model.agents)} agents"
            ),
        )
        self.fleet_tree.update_fleet()
        self.event_log.update_events()
        if isinstance(stack[-1], DetailScreen):
            stack[-1].update_details()

    def _draw_banner(self) -> None:
        widget = self.lost_banner
        lost = not self.online and (self._ever_online or bool(self.connection_detail))
        if widget.display != lost:
            widget.display = lost
        if lost:
            last = self.model.last_update
            data_age = time.monotonic() - last if last is not None and self.model.loaded else None
            _update(widget, banner(self.connection_detail, data_age), layout=True)

    def _draw_chaos(self) -> None:
        widget = self.chaos_banner
        runs = self.model.chaos.active()
        if widget.display != bool(runs):
            widget.display = bool(runs)
        widget.set_class(any(run.lost for run in runs), "-lost")
        if runs:
            _update(widget, chaos_lines(runs, self.model.clock(), self.size.width), layout=True)

    def _set_query(self, **changes: Any) -> None:
        self.query_state = self.query_state.with_(**changes)
        self.redraw()

    # -- actions -------------------------------------------------------------------------------

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_search(self) -> None:
        self.search_box.focus()

    def action_leave_search(self) -> None:
        if self.focused is self.search_box:
            self.agent_table.focus()

    def action_cycle_state(self) -> None:
        index = STATE_FILTERS.index(self.query_state.state)
        self._set_query(state=STATE_FILTERS[(index + 1) % len(STATE_FILTERS)])

    def action_cycle_sort(self) -> None:
        index = SORT_KEYS.index(self.query_state.sort)
        self._set_query(sort=SORT_KEYS[(index + 1) % len(SORT_KEYS)], reverse=False)

    def action_reverse(self) -> None:
        self._set_query(reverse=not self.query_state.reverse)

    def action_show_all(self) -> None:
        self.search_box.value = ""
        self._set_query(scope="", state="all", text="")

    def action_toggle_log(self) -> None:
        log = self.event_log
        log.display = not log.display

    def action_chaos_scope(self) -> None:
        """Scope the table to the next group a chaos run is under way in."""
        groups = sorted({run.group for run in self.model.chaos.active() if run.group})
        if not groups:
            self.notify("no chaos run under way", timeout=2)
            return
        scope = self.query_state.scope
        index = groups.index(scope) + 1 if scope in groups else 0
        self._set_query(scope=groups[index % len(groups)])

    def on_input_changed(self, event: Input.Changed) -> None:
        self._set_query(text=event.value.strip())

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self.agent_table.focus()

    def on_agent_table_opened(self, event: AgentTable.Opened) -> None:
        self.push_screen(DetailScreen(self.model, event.agent_id))

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[str]) -> None:
        data = event.node.data or ""
        agent = self.model.agents.get(data)
        scope = agent.group if agent is not None else data
        if scope != self.query_state.scope:
            self._set_query(scope=scope)
        if agent is not None:
            self.agent_table.move_to(agent.id)

    def on_tree_node_selected(self, event: Tree.NodeSelected[str]) -> None:
        data = event.node.data or ""
        if data in self.model.agents:
            self.push_screen(DetailScreen(self.model, data))


def _update(widget: Static, content: Text, layout: bool = False) -> None:
    # An update lays out the whole screen again when asked to, and redraws the widget in any
    # case: only when the text really changed. Text, never a str: no markup from the monitor.
    if widget.content != content:
        widget.update(content, layout=layout)


def run_dashboard(
    monitor_url: str, token: str | None = None, ssl_context: ssl.SSLContext | None = None
) -> None:
    """Open the dashboard on a monitor's HTTP API until the operator quits."""
    DashboardApp(HttpFeed(monitor_url, token=token, ssl_context=ssl_context)).run()
