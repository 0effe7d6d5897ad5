"""``junit.xml``: one test suite named after the experiment, one test case per check.

CI servers read this format to show which hypothesis checks held. A failed check gets a
``failure`` element with what was expected and what was observed; an aborted or errored run
gets one more test case, ``run``, with an ``error`` element carrying the reason, so a run that
never got to judge anything still shows up red.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

from chaos.record import Check, RunRecord


def junit_xml(record: RunRecord) -> str:
    """The JUnit XML document for ``record``."""
    checks = record.checks
    failures = sum(1 for c in checks if not c.passed)
    errored = record.verdict in ("aborted", "error")
    ended = record.ended if record.ended is not None else record.started
    elapsed = f"{max(0.0, ended - record.started):.3f}"
    counts = {
        "tests": str(len(checks) + (1 if errored else 0)),
        "failures": str(failures),
        "errors": "1" if errored else "0",
        "skipped": "0",
        "time": elapsed,
    }
    root = ET.Element("testsuites", {"name": "agentha chaos", **counts})
    suite = ET.SubElement(
        root,
        "testsuite",
        {
            "name": record.title,
            **counts,
            "timestamp": datetime.fromtimestamp(record.started, UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        },
    )
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("experiment", record.experiment),
        ("group", record.group),
        ("verdict", record.verdict),
        ("exit_code", "" if record.exit_code is None else str(record.exit_code)),
        ("dry_run", str(record.dry_run).lower()),
    ):
        ET.SubElement(props, "property", {"name": name, "value": value})
    for check in checks:
        _testcase(suite, record, check)
    if errored:
        case = ET.SubElement(
            suite, "testcase", {"name": "run", "classname": _classname(record, "run"), "time": "0"}
        )
        error = ET.SubElement(
            case, "error", {"message": record.reason or record.verdict, "type": record.verdict}
        )
        error.text = f"the run {'aborted' if record.verdict == 'aborted' else 'failed'}: " + (
            record.reason or "no reason recorded"
        )
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(record: RunRecord, path: Path) -> Path:
    path.write_text(junit_xml(record), encoding="utf-8")
    return path


def _classname(record: RunRecord, phase: str) -> str:
    return f"chaos.{record.group.replace('/', '.')}.{phase}"


def _testcase(suite: ET.Element, record: RunRecord, check: Check) -> None:
    case = ET.SubElement(
        suite,
        "testcase",
        {"name": check.name, "classname": _classname(record, check.phase), "time": "0"},
    )
    if check.passed:
        return
    failure = ET.SubElement(
        case,
        "failure",
        {"message": f"expected {check.expected}, observed {check.observed}", "type": "deviated"},
    )
    lines = [f"expected: {check.expected}", f"observed: {check.observed}"]
    if check.detail:
        lines.append(f"detail: {check.detail}")
    failure.text = "\n".join(lines)
