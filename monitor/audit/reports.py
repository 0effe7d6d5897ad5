"""Audit reports: JSON (the record), JUnit XML (for CI) and Markdown (for people).

All three are built from results alone, which hold status codes and fixed words: no header,
body, token or key can reach a report. Files are written atomically into the run's folder.
"""

from __future__ import annotations

import json
import os
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from monitor.audit import limits
from monitor.audit.result import AuditResult, Status
from monitor.audit.runner import GroupAudit

FORMATS = ("json", "junit", "markdown")
FILE_NAMES = {"json": "audit.json", "junit": "audit.xml", "markdown": "audit.md"}
REPORT_VERSION = 1


def caps() -> dict[str, int]:
    """The caps every audit keeps, as the reports state them."""
    return {
        "auth_requests": limits.AUTH_REQUESTS,
        "ip_requests": limits.IP_REQUESTS,
        "methods_max": limits.MAX_METHODS,
        "header_requests": limits.HEADER_REQUESTS,
        "input_max": limits.INPUT_FIXED_REQUESTS + limits.MAX_TYPED_FIELDS,
        "rate_burst_max": limits.MAX_RATE_BURST,
        "token_requests": limits.TOKEN_REQUESTS,
        "per_api_check_max": limits.MAX_CHECK_REQUESTS,
        "per_group_max": limits.MAX_GROUP_REQUESTS,
    }


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def _result_json(result: AuditResult) -> dict[str, Any]:
    return {
        "check": result.check,
        "class": result.audit_class.value,
        "status": result.status.value,
        "finding": result.finding.value if result.finding else None,
        "message": result.message,
        "reason": result.reason,
        "requests": result.requests,
        "duration_s": round(result.duration, 3),
        "attempts": [
            {
                "name": a.name,
                "expected": a.expected,
                "outcome": a.outcome.value,
                "status": a.status,
                "passed": a.passed,
                "finding": a.finding.value if a.finding else None,
                "requests": a.requests,
                "detail": a.detail,
            }
            for a in result.attempts
        ],
    }


def summary(audits: Sequence[GroupAudit]) -> dict[str, int]:
    results = [r for a in audits for r in a.results]
    counts = {status.value: sum(1 for r in results if r.status is status) for status in Status}
    return {"groups": len(audits), "requests": sum(a.requests for a in audits), **counts}


def to_json(audits: Sequence[GroupAudit], inventory: str) -> dict[str, Any]:
    return {
        "version": REPORT_VERSION,
        "inventory": inventory,
        "started": _iso(min((a.started for a in audits), default=time.time())),
        "caps": caps(),
        "summary": summary(audits),
        "groups": [
            {
                "id": a.id,
                "environment": a.environment,
                "group": a.group,
                "production": a.production,
                "requests": a.requests,
                "request_cap": a.request_cap,
                "started": _iso(a.started),
                "duration_s": round(a.duration, 3),
                "results": [_result_json(r) for r in a.results],
            }
            for a in audits
        ],
    }


def to_junit(audits: Sequence[GroupAudit]) -> str:
    """JUnit XML: a suite per group, a test case per API check and class."""
    total = summary(audits)
    root = ET.Element(
        "testsuites",
        name="agentha audit",
        tests=str(sum(len(a.results) for a in audits)),
        failures=str(total["fail"]),
        errors=str(total["error"]),
        skipped=str(total["skipped"]),
    )
    for audit in audits:
        suite = ET.SubElement(
            root,
            "testsuite",
            name=audit.id,
            tests=str(len(audit.results)),
            failures=str(audit.count(Status.FAIL)),
            errors=str(audit.count(Status.ERROR)),
            skipped=str(audit.count(Status.SKIPPED)),
            time=f"{audit.duration:.3f}",
            timestamp=_iso(audit.started),
        )
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="requests", value=str(audit.requests))
        ET.SubElement(props, "property", name="request_cap", value=str(audit.request_cap))
        for result in audit.results:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"{audit.id}.{result.check}",
                name=result.audit_class.value,
                time=f"{result.duration:.3f}",
            )
            text = "\n".join(_attempt_line(a) for a in result.attempts)
            if result.status is Status.FAIL:
                node = ET.SubElement(case, "failure", message=result.message, type="finding")
                node.text = text
            elif result.status is Status.ERROR:
                node = ET.SubElement(case, "error", message=result.message, type="not_run")
                node.text = text
            elif result.status is Status.SKIPPED:
                ET.SubElement(case, "skipped", message=result.message)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


def _attempt_line(a: Any) -> str:
    got = str(a.status) if a.status is not None else a.outcome.value
    verdict = "ok" if a.passed else (a.finding.value if a.finding else "no usable answer")
    detail = f" ({a.detail})" if a.detail else ""
    return f"{a.name}: expected {a.expected}, got {got}: {verdict}{detail}"


_ICON = {
    Status.PASS: "pass",
    Status.FAIL: "**FAIL**",
    Status.ERROR: "error",
    Status.SKIPPED: "skipped",
}


def to_markdown(audits: Sequence[GroupAudit], inventory: str) -> str:
    total = summary(audits)
    input_max = limits.INPUT_FIXED_REQUESTS + limits.MAX_TYPED_FIELDS
    lines = [
        "# agentha security audit",
        "",
        f"Inventory `{inventory}`, started {to_json(audits, inventory)['started']}.",
        "",
        f"{total['groups']} groups, {total['requests']} requests: {total['pass']} passed, "
        f"{total['fail']} failed, {total['error']} could not run, {total['skipped']} skipped.",
        "",
        f"Caps: at most {limits.MAX_GROUP_REQUESTS} requests per group and "
        f"{limits.MAX_CHECK_REQUESTS} per API check; auth {limits.AUTH_REQUESTS}, ip "
        f"{limits.IP_REQUESTS}, methods up to {limits.MAX_METHODS}, headers "
        f"{limits.HEADER_REQUESTS}, input up to {input_max}, "
        f"rate burst up to {limits.MAX_RATE_BURST}; each request times out after "
        f"{limits.REQUEST_TIMEOUT_S:g} s.",
    ]
    for audit in audits:
        production = " (production)" if audit.production else ""
        lines += [
            "",
            f"## {audit.id}{production}",
            "",
            f"{audit.requests} requests of {audit.request_cap} allowed, {audit.duration:.1f} s.",
            "",
            "| API check | class | result | finding | requests |",
            "| --- | --- | --- | --- | --- |",
        ]
        for r in audit.results:
            finding = r.finding.value if r.finding else (r.reason or "")
            lines.append(
                f"| {r.check} | {r.audit_class.value} | {_ICON[r.status]} | {finding} "
                f"| {r.requests} |"
            )
        failed = [r for r in audit.results if r.status in (Status.FAIL, Status.ERROR)]
        for r in failed:
            lines += ["", f"### {r.check} / {r.audit_class.value}: {r.message}", ""]
            lines += [f"- {_attempt_line(a)}" for a in r.attempts]
            if r.finding is not None:
                lines.append(f"- runbook: docs/runbooks.md#audit-{r.audit_class.value}-finding")
    return "\n".join(lines) + "\n"


def write_reports(
    audits: Sequence[GroupAudit], folder: Path, inventory: str, formats: Sequence[str] = FORMATS
) -> list[Path]:
    """Write the chosen formats into ``folder`` (created, 0700); the paths written."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    written = []
    for name in formats:
        if name == "json":
            text = json.dumps(to_json(audits, inventory), indent=2) + "\n"
        elif name == "junit":
            text = to_junit(audits)
        else:
            text = to_markdown(audits, inventory)
        path = folder / FILE_NAMES[name]
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
        written.append(path)
    return written
