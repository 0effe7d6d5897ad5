"""``summary.md``: the verdict and exit code first, then the tables, for a CI job summary."""

from __future__ import annotations

from pathlib import Path

from chaos.record import RunRecord
from chaos.reports.tables import (
    Table,
    checks_table,
    faults_table,
    phases_table,
    stats_table,
    verdict_text,
)


def markdown_summary(record: RunRecord) -> str:
    lines = [f"# {_inline(record.title)}", ""]
    lines.append(f"**Verdict: {verdict_text(record)}**")
    if record.reason:
        lines += ["", f"Reason: {_inline(record.reason)}"]
    lines += ["", f"Group `{_code(record.group)}`, experiment `{_code(record.experiment)}`."]
    passed = sum(1 for c in record.checks if c.passed)
    lines += ["", f"## Checks ({passed} of {len(record.checks)} passed)", ""]
    lines += _table(checks_table(record), "No checks were judged.")
    lines += ["", "## Load per phase", ""]
    lines += _table(stats_table(record), "No load was recorded.")
    lines += ["", "## Faults", ""]
    lines += _table(faults_table(record), "No fault was injected.")
    lines += ["", "## Phases", ""]
    lines += _table(phases_table(record), "No phase was reached.")
    lines += ["", "## Guard decisions", ""]
    lines += [f"- {_inline(g)}" for g in record.guard] or ["None."]
    if record.notes:
        lines += ["", "## Notes", ""]
        lines += [f"- {_inline(n)}" for n in record.notes]
    return "\n".join(lines) + "\n"


def write_markdown(record: RunRecord, path: Path) -> Path:
    path.write_text(markdown_summary(record), encoding="utf-8")
    return path


def _table(table: Table, empty: str) -> list[str]:
    headers, rows = table
    if not rows:
        return [empty]
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return out


def _inline(text: str) -> str:
    # One line, and no HTML: summaries are shown by CI servers that render inline HTML.
    return " ".join(text.split()).replace("<", "&lt;")


def _cell(text: str) -> str:
    return _inline(text).replace("|", "\\|")


def _code(text: str) -> str:
    return " ".join(text.split()).replace("`", "'")
