"""The header lines: the fleet in numbers, and the banner for a lost monitor connection."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text

from tui import look
from tui.model import GROUP_STATUSES, STATES, FleetModel

DIM = Style(dim=True)
TITLE = Style(bold=True)


def summary(model: FleetModel, online: bool, width: int) -> Text:
    """Two lines: monitors and environments and groups by status; agents by state.

    Zero counts are dimmed so what needs attention stands out; below 100 columns the words
    are shortened, never the numbers.
    """
    short = width < 100
    monitor = Text.assemble(
        ("agentha ", TITLE),
        ("monitors ", DIM),
        (f"{1 if online else 0}/1", Style(color="green") if online else Style(color="red")),
        (" online" if not short else "", DIM),
        ("  envs " if short else "  environments ", DIM),
        str(len(model.environments)),
        ("  groups", DIM),
    )
    groups = model.group_counts()
    for status in GROUP_STATUSES:
        count = groups.get(status, 0)
        if status == "unknown" and not count:
            continue
        symbol, word, style = look.group_look(status)
        if short and status == "unavailable":
            word = "unavail"
        monitor.append(f" {symbol}{count} {word}", style if count else DIM)
    agents = model.agent_counts()
    line = Text.assemble(("agents ", DIM), (str(len(model.agents)), TITLE))
    for state in STATES:
        count = agents.get(state, 0)
        symbol, word, style = look.agent_look(state)
        line.append(f"  {symbol}{count} {word}", style if count else DIM)
    return Text("\n").join([monitor, line])


def banner(detail: str, attempt_age: float | None) -> Text:
    text = Text("✖ monitor connection lost", style=Style(bold=True))
    if detail:
        text.append(f": {detail}")
    text.append(" — reconnecting")
    if attempt_age is not None:
        text.append(f"; data shown is {look.age(attempt_age)} old")
    return text
