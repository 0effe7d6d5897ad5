"""Reports of a chaos run, each made from the ``RunRecord`` alone.

``write_reports(record, out_dir, formats)`` writes the chosen formats into ``out_dir``:

========  ==============  ====================================================
format    file            what
========  ==============  ====================================================
json      ``run.json``    the record itself (``RunRecord.write``)
junit     ``junit.xml``   one test case per hypothesis check, for CI servers
markdown  ``summary.md``  verdict, checks, load per phase, faults, guards
html      ``report.html`` one self-contained page with the timeline chart
========  ==============  ====================================================

A report that cannot be written is logged and skipped: it never stops a run, and the
others are still written. ``run.json`` can be turned into the reports again later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from chaos.record import RunRecord
from chaos.reports.html import html_report, write_html
from chaos.reports.junit import junit_xml, write_junit
from chaos.reports.markdown import markdown_summary, write_markdown

__all__ = [
    "REPORT_FILES",
    "html_report",
    "junit_xml",
    "markdown_summary",
    "write_reports",
]

log = logging.getLogger(__name__)


def _write_json(record: RunRecord, path: Path) -> Path:
    record.write(path)
    return path


REPORT_FILES: dict[str, str] = {
    "json": "run.json",
    "junit": "junit.xml",
    "markdown": "summary.md",
    "html": "report.html",
}
_WRITERS: dict[str, Callable[[RunRecord, Path], Path]] = {
    "json": _write_json,
    "junit": write_junit,
    "markdown": write_markdown,
    "html": write_html,
}


def write_reports(record: RunRecord, out_dir: Path, formats: Iterable[str]) -> list[Path]:
    """Write each format into ``out_dir``; returns the files written, in ``formats`` order.

    An unknown format raises ``ValueError`` (the experiment loader refuses those first).
    """
    formats = list(dict.fromkeys(formats))
    unknown = [f for f in formats if f not in _WRITERS]
    if unknown:
        raise ValueError(
            f"unknown report format {', '.join(unknown)}; expected one of {', '.join(_WRITERS)}"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        path = out_dir / REPORT_FILES[fmt]
        try:
            written.append(_WRITERS[fmt](record, path))
        except Exception as exc:  # a report never stops a run
            log.error("could not write %s: %s: %s", path, type(exc).__name__, exc)
    return written
