"""``report.html``: one self-contained page (no scripts, fonts or style sheets fetched).

The verdict banner first, the timeline chart (``chaos.reports.chart``), then the same tables
as the Markdown summary. Every string from the record is escaped: titles, reasons and agent
answers are data, never markup.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from chaos.record import RunRecord
from chaos.reports.chart import esc, legend_items, timeline_svg
from chaos.reports.tables import (
    Table,
    checks_table,
    faults_table,
    phases_table,
    stats_table,
    verdict_text,
)

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1040px;
       color: #222; padding: 0 1em; }
.verdict { padding: .8em 1em; border-radius: 6px; color: #fff; }
.verdict h1 { margin: 0 0 .2em; font-size: 1.4em; }
.verdict p { margin: .2em 0; }
.verdict-pass { background: #2e7d32; }
.verdict-fail { background: #c62828; }
.verdict-aborted { background: #ef6c00; }
.verdict-error, .verdict-running { background: #555; }
table { border-collapse: collapse; margin: .5em 0 1.2em; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .25em .5em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
tr.failed td { background: #fdecea; }
.meta td:first-child { font-weight: bold; }
.legend span { display: inline-block; margin-right: 1em; }
.legend i { display: inline-block; width: .9em; height: .9em; margin-right: .3em;
            vertical-align: middle; }
.chart { overflow-x: auto; }
"""


def html_report(record: RunRecord) -> str:
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(record.title)}: {esc(record.verdict)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f'<header class="verdict verdict-{esc(record.verdict)}">',
        f"<h1>{esc(record.title)}</h1>",
        f'<p class="verdict-text">Verdict: <strong>{esc(verdict_text(record))}</strong></p>',
    ]
    if record.reason:
        out.append(f'<p class="reason">{esc(record.reason)}</p>')
    out.append("</header>")
    out += _meta(record)
    out += ["<h2>Timeline</h2>", f'<div class="chart">{timeline_svg(record)}</div>']
    out.append(
        '<p class="legend">'
        + "".join(
            f'<span><i style="background:{colour}"></i>{esc(state)}</span>'
            for state, colour in legend_items()
        )
        + '<span><i style="background:#d32f2f;opacity:.3"></i>fault window</span></p>'
    )
    passed = sum(1 for c in record.checks if c.passed)
    out.append(f"<h2>Checks ({passed} of {len(record.checks)} passed)</h2>")
    out += _table(
        checks_table(record),
        "No checks were judged.",
        failed=[not c.passed for c in record.checks],
    )
    out += ["<h2>Load per phase</h2>", *_table(stats_table(record), "No load was recorded.")]
    out += ["<h2>Faults</h2>", *_table(faults_table(record), "No fault was injected.")]
    out += ["<h2>Phases</h2>", *_table(phases_table(record), "No phase was reached.")]
    out.append("<h2>Guard decisions</h2>")
    out += _list(record.guard, "None.")
    if record.notes:
        out += ["<h2>Notes</h2>", *_list(record.notes, "")]
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_html(record: RunRecord, path: Path) -> Path:
    path.write_text(html_report(record), encoding="utf-8")
    return path


def _meta(record: RunRecord) -> list[str]:
    started = datetime.fromtimestamp(record.started, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    rows = [
        ("Group", record.group),
        ("Experiment", record.experiment),
        ("Started", started),
    ]
    if record.ended is not None:
        rows.append(("Length", f"{record.ended - record.started:.1f} s"))
    if record.dry_run:
        rows.append(("Mode", "dry run: nothing was injected"))
    body = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in rows)
    return [f'<table class="meta">{body}</table>']


def _table(table: Table, empty: str, failed: list[bool] | None = None) -> list[str]:
    headers, rows = table
    if not rows:
        return [f"<p>{esc(empty)}</p>"]
    out = ["<table><thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in headers) + "</tr></thead>"]
    out.append("<tbody>")
    for index, row in enumerate(rows):
        cls = ' class="failed"' if failed and failed[index] else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{esc(v)}</td>" for v in row) + "</tr>")
    out.append("</tbody></table>")
    return out


def _list(items: list[str], empty: str) -> list[str]:
    if not items:
        return [f"<p>{esc(empty)}</p>"]
    return ["<ul>", *(f"<li>{esc(item)}</li>" for item in items), "</ul>"]
