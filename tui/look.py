"""How states, ages, latencies and sparklines look: a symbol and a word with every colour.

Colour is never the only signal (colour-blind operators, monochrome SSH sessions): each state
has its own symbol and name. Text from the monitor is always added as plain text, never parsed
as markup.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.style import Style
from rich.text import Text

AGENT_LOOK = {
    "up": ("✔", "up", Style(color="green")),
    "degraded": ("▲", "degraded", Style(color="yellow", bold=True)),
    "paused": ("‖", "paused", Style(color="cyan")),
    "down": ("✖", "down", Style(color="red", bold=True)),
    "unknown": ("?", "unknown", Style(dim=True)),
}
GROUP_LOOK = {
    "ok": ("✔", "ok", Style(color="green")),
    "at_risk": ("▲", "at risk", Style(color="yellow", bold=True)),
    "unavailable": ("✖", "unavailable", Style(color="red", bold=True)),
    "unknown": ("?", "unknown", Style(dim=True)),
}
LOST_STYLE = Style(color="yellow", bold=True)  # a chaos run that stopped reporting
# A chaos run's phase; a finished run shows its verdict instead of "done".
CHAOS_LOOK = {
    "preflight": ("◇", "preflight", Style(color="cyan")),
    "warmup": ("◇", "warmup", Style(color="cyan")),
    "baseline": ("◇", "baseline", Style(color="cyan")),
    "fault": ("↯", "fault", Style(color="magenta", bold=True)),
    "recovery": ("↺", "recovery", Style(color="cyan")),
    "done": ("■", "done", Style()),
    "lost": ("▲", "lost", LOST_STYLE),
}
VERDICT_LOOK = {
    "pass": ("✔", "pass", Style(color="green")),
    "fail": ("✖", "fail", Style(color="red", bold=True)),
    "aborted": ("■", "aborted", Style(color="yellow")),
    "error": ("✖", "error", Style(color="red", bold=True)),
}
# "↯" rather than an emoji bolt: one cell wide in every terminal, so columns stay aligned.
FAULT_SYMBOL = "↯"
FAULT_STYLE = Style(color="magenta", bold=True)
FAULT_CLEARED = ("✔", "cleared", Style(color="green"))
_OTHER = ("•", "", Style())
SPARK = "▁▂▃▄▅▆▇█"


def agent_look(state: str) -> tuple[str, str, Style]:
    return AGENT_LOOK.get(state, (_OTHER[0], state, _OTHER[2]))


def group_look(status: str) -> tuple[str, str, Style]:
    return GROUP_LOOK.get(status, (_OTHER[0], status, _OTHER[2]))


def chaos_look(phase: str, verdict: str | None = None) -> tuple[str, str, Style]:
    if phase == "done" and verdict in VERDICT_LOOK:
        return VERDICT_LOOK[verdict]
    return CHAOS_LOOK.get(phase, (_OTHER[0], phase, _OTHER[2]))


def fault_mark(actions: Sequence[str]) -> str:
    """``↯stop``, ``↯pause+latency``: the faults a chaos run holds on an agent."""
    return FAULT_SYMBOL + "+".join(actions)


def fault_look(actions: Sequence[str]) -> tuple[str, str, Style]:
    """A ``fault`` event's new value: the actions held, or cleared."""
    if not actions:
        return FAULT_CLEARED
    return FAULT_SYMBOL, "+".join(actions), FAULT_STYLE


def other_look(value: str) -> tuple[str, str, Style]:
    """Anything this dashboard has no look for (an event kind from a newer monitor)."""
    return _OTHER[0], value, _OTHER[2]


def state_text(state: str) -> Text:
    symbol, word, style = agent_look(state)
    return Text(f"{symbol} {word}", style=style)


def group_text(status: str) -> Text:
    symbol, word, style = group_look(status)
    return Text(f"{symbol} {word}", style=style)


def redundancy_badge(redundancy: int, status: str) -> Text:
    """``+1`` spare agent, ``±0`` none to spare, ``-1`` below what the group needs."""
    label = "±0" if redundancy == 0 else f"{redundancy:+d}"
    return Text(label, style=group_look(status)[2])


def age(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"


def latency(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.1f}ms" if seconds < 0.1 else f"{seconds * 1000:.0f}ms"
    return f"{seconds:.2f}s"


def days(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}d"


def days_style(value: float | None) -> Style:
    if value is None or value > 30:
        return Style()
    return Style(color="red", bold=True) if value <= 7 else Style(color="yellow")


def tls_short(version: str | None) -> str:
    """``TLSv1.3`` -> ``1.3``."""
    return (version or "").removeprefix("TLSv")


def sparkline(values: Sequence[float], width: int) -> str:
    """The last ``width`` values as block characters, scaled between their min and max."""
    values = list(values)[-width:]
    if not values:
        return ""
    low, high = min(values), max(values)
    span = high - low
    if span <= 0:
        return SPARK[0] * len(values)
    top = len(SPARK) - 1
    return "".join(SPARK[round((v - low) / span * top)] for v in values)
