"""The header lines: the fleet in numbers, the banner for a lost monitor connection, and a
line for every chaos run under way."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text

from tui import look
from tui.chaos import ChaosRun
from tui.model import GROUP_STATUSES, STATES, FleetModel

DIM = Style(dim=True)
TITLE = Style(bold=True)
CHAOS_SHOWN = 3  # chaos run lines at the most; more are counted on the last line
FAULTS_NAMED = 3  # agents named on a run's line; more are counted


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


def chaos_lines(runs: list[ChaosRun], now: float, width: int = 120) -> Text:
    """One line per active chaos run, lost ones first; empty when none is under way.

    ``↯ chaos stop-one-agent on test/orders  phase ↯ fault  1 fault: orders-1 ↯stop  1m``
    (below 100 columns without the word "phase"). A lost run (it stopped reporting, its
    faults may still be applied) says what to run.
    """
    lines = [_chaos_line(run, now, width < 100) for run in runs[:CHAOS_SHOWN]]
    if len(runs) > CHAOS_SHOWN:
        lines[-1].append(f"  (+{len(runs) - CHAOS_SHOWN} more chaos runs)", DIM)
    return Text("\n").join(lines)


def _chaos_line(run: ChaosRun, now: float, short: bool) -> Text:
    faults = len(run.faults)
    count = f"{faults} fault{'s' if faults != 1 else ''}"
    if run.lost:
        # What to do comes first: a narrow terminal cuts the end of the line.
        text = Text.assemble(
            ("▲ lost chaos run", look.LOST_STYLE),
            " — needs ",
            ("agentha chaos recover", TITLE),
            ": ",
            (run.experiment or run.run, TITLE),
            f" on {run.group or '?'}, {count}",
        )
    else:
        symbol, word, style = look.chaos_look(run.phase, run.verdict)
        text = Text.assemble(
            (f"{look.FAULT_SYMBOL} chaos ", look.FAULT_STYLE),
            (run.experiment or run.run, TITLE),
            f" on {run.group or '?'}",
            ("  " if short else "  phase ", DIM),
            (f"{symbol} {word}", style),
            f"  {count}",
        )
    if faults:
        named = sorted(run.faults.items())[:FAULTS_NAMED]
        text.append(": ")
        text.append(
            ", ".join(
                f"{_relative(agent, run.group)} {look.fault_mark(actions)}"
                for agent, actions in named
            ),
            look.FAULT_STYLE,
        )
        if faults > FAULTS_NAMED:
            text.append(f" +{faults - FAULTS_NAMED}")
    if run.started is not None:
        text.append(f"  {look.age(now - run.started)}", DIM)
    text.append(f"  run {run.run}", DIM)
    return text


def _relative(agent: str, group: str) -> str:
    return agent.removeprefix(f"{group}/") if group else agent
