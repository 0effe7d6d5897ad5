"""The screens over the dashboard: one agent's details, and the keyboard help."""

from __future__ import annotations

import time
from typing import Any, ClassVar

from rich.console import Group as RenderGroup
from rich.console import RenderableType
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Sparkline, Static

from tui import look
from tui.chaos import ChaosRun
from tui.event_log import event_segments
from tui.model import AgentRow, FleetModel

LABEL = Style(dim=True)
# Certificate facts of the tls probe worth a line each, in this order.
CERT_FIELDS = (
    ("subject", "subject"),
    ("issuer", "issuer"),
    ("sans", "names (SAN)"),
    ("serial", "serial"),
    ("fingerprint_sha256", "SHA-256"),
    ("not_before", "valid from"),
    ("not_after", "valid until"),
    ("earliest_chain_expiry", "chain expires"),
    ("chain_length", "chain length"),
    ("chain_trusted", "chain trusted"),
    ("verify_error", "verify error"),
    ("hostname_matches", "hostname matches"),
    ("version", "TLS version"),
    ("cipher", "cipher"),
    ("tls10_accepted", "accepts TLS 1.0"),
    ("tls11_accepted", "accepts TLS 1.1"),
)
_TIME_FIELDS = frozenset({"not_before", "not_after", "earliest_chain_expiry"})


def _when(value: float | None, now: float) -> str:
    if value is None:
        return ""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value))
    delta = now - value
    relative = f"{look.age(delta)} ago" if delta >= 0 else f"in {look.age(-delta)}"
    return f"{stamp} ({relative})"


def _value(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def agent_details(model: FleetModel, row: AgentRow) -> RenderableType:
    """Everything the monitor said about one agent, as Rich renderables."""
    now = model.clock()
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style=LABEL)
    facts.add_column()
    facts.add_row("state", look.state_text(row.state))
    facts.add_row("reason", Text(row.reason))
    facts.add_row("since", _when(row.since, now))
    facts.add_row("findings", Text(", ".join(row.findings) or "none"))
    for run in model.chaos.runs_on(row.id):
        facts.add_row("chaos fault", _fault_text(run, row.id, now))
    group = model.groups.get(row.group)
    if group is not None:
        status = look.group_text(group.status)
        status.append(f"  {group.healthy} healthy of {group.total}, {group.required} required ")
        status.append_text(look.redundancy_badge(group.redundancy, group.status))
        facts.add_row("group", status)
        if group.findings:
            facts.add_row("group findings", Text("; ".join(group.findings), style="yellow"))
    profile = model.environments.get(row.env)
    facts.add_row("environment", f"{row.env} ({profile})" if profile else row.env)

    probes = Table(title="last result of every probe", title_justify="left", expand=True)
    for name in ("probe", "result", "reason", "when", "took", "message"):
        probes.add_column(name, overflow="fold")
    for name, result in sorted(row.probes.items()):
        ok = bool(result.get("ok"))
        probes.add_row(
            name,
            Text("✔ ok", style="green") if ok else Text("✖ failed", style="bold red"),
            Text(str(result.get("reason", ""))),
            look.age(now - result["started"]) + " ago" if result.get("started") else "",
            look.latency(result.get("duration")),
            Text(str(result.get("message", ""))),
        )
    parts: list[RenderableType] = [facts, Text(""), probes]
    status_details = (row.probes.get("status") or {}).get("details") or {}
    if status_details:
        parts += [Text(""), _grid("status answer", status_details.items())]
    cert = (row.probes.get("tls") or {}).get("details") or {}
    if cert:
        lines = []
        for key, label in CERT_FIELDS:
            if key in cert:
                value = cert[key]
                shown = _when(value, now) if key in _TIME_FIELDS else _value(value)
                lines.append((label, shown))
        days = row.cert_days(now)
        lines.insert(0, ("days left", Text(look.days(days), style=look.days_style(days))))
        parts += [Text(""), _grid("certificate", lines)]
    plaintext = (row.probes.get("plaintext") or {}).get("details") or {}
    if plaintext:
        parts += [Text(""), _grid("plain HTTP exposure", plaintext.items())]
    events = model.events_of(row.id)[-10:]
    parts += [Text(""), Text("recent events", style=Style(bold=True))]
    if events:
        parts += [Text.assemble(*((s.text, s.style) for s in event_segments(e))) for e in events]
    else:
        parts.append(Text("none since the dashboard started", style=LABEL))
    return RenderGroup(*parts)


def _fault_text(run: ChaosRun, agent: str, now: float) -> Text:
    """``↯stop by chaos run R (EXPERIMENT on GROUP, phase ↯ fault), 12s ago``."""
    text = Text(look.fault_mark(run.faults[agent]), style=look.FAULT_STYLE)
    text.append(f" by chaos run {run.run} ({run.experiment or '?'} on {run.group}, phase ")
    symbol, word, style = look.chaos_look(run.phase, run.verdict)
    text.append(f"{symbol} {word}", style)
    text.append(")")
    since = run.since.get(agent)
    if since is not None:
        text.append(f", since {_when(since, now)}")
    if run.lost:
        text.append(" — the run is lost: ", look.LOST_STYLE)
        text.append("agentha chaos recover", Style(bold=True))
    return text


def _grid(title: str, items: Any) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.title, grid.title_justify, grid.title_style = title, "left", Style(bold=True)
    grid.add_column(style=LABEL)
    grid.add_column(overflow="fold")
    for key, value in items:
        grid.add_row(str(key), value if isinstance(value, Text) else Text(_value(value)))
    return grid


class DetailScreen(Screen[None]):
    """One agent: kept current while open; Escape goes back."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,backspace", "app.pop_screen", "back")]

    def __init__(self, model: FleetModel, agent_id: str) -> None:
        super().__init__()
        self.model = model
        self.agent_id = agent_id
        self._shown = -1

    def compose(self) -> ComposeResult:
        yield Static(id="detail-title")
        with Vertical(id="detail-latency"):
            yield Static("status probe latency, recent probes", classes="caption")
            yield Sparkline([], id="latency-spark")
        with VerticalScroll(id="detail-body"):
            yield Static(id="detail-text")
        yield Footer()

    def on_mount(self) -> None:
        self.update_details()

    def update_details(self) -> None:
        if self.model.version == self._shown:
            return
        self._shown = self.model.version
        row = self.model.agents.get(self.agent_id)
        title = self.query_one("#detail-title", Static)
        if row is None:
            title.update(Text(f"{self.agent_id}: no longer in the monitor's inventory"))
            return
        title_text = Text.assemble(look.state_text(row.state), "  ", (row.id, "bold"))
        if row.faults:
            title_text.append(f"  {look.fault_mark(row.faults)} chaos fault", look.FAULT_STYLE)
        title.update(title_text)
        self.query_one("#latency-spark", Sparkline).data = list(row.history)
        self.query_one("#detail-text", Static).update(agent_details(self.model, row))


HELP = (
    (
        "navigate",
        (
            ("tab / shift+tab", "move between tree, table and search"),
            ("↑ ↓ pgup pgdn home end", "move in the tree or the table"),
            ("enter", "tree: show that environment or group; table: agent details"),
            ("escape", "back from details; leave the search box"),
        ),
    ),
    (
        "filter and sort",
        (
            ("/", "search agents (name, state, reason, findings)"),
            ("f", "state filter: all, problems, down, degraded, paused, unknown, up"),
            ("s / S", "sort by the next column / reverse the order"),
            ("a", "show all: clear scope, filter and search"),
            ("c", "next group with a chaos run under way"),
        ),
    ),
    (
        "other",
        (
            ("l", "show or hide the event log"),
            ("↯ marks", "chaos: faults on an agent (↯stop), a group's run"),
            ("?", "this help"),
            ("q, ctrl+c", "quit"),
        ),
    ),
)


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "app.pop_screen", "close")
    ]

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style=Style(bold=True))
        table.add_column()
        for section, keys in HELP:
            table.add_row(Text(section, style=Style(underline=True)), "")
            for key, what in keys:
                table.add_row(key, what)
        with Vertical(id="help"):
            yield Static(Text("keys", style=Style(bold=True)), classes="caption")
            yield Static(table)
            yield Static(Text("escape or ? closes", style=LABEL))
