"""The audit in the monitor's views: Prometheus metric families, a snapshot fragment, MQTT.

Views only: they read the latest ``GroupAudit`` per group and keep nothing. Labels are
bounded: environment, group and API check names come from the inventory, ``class`` is one of
six values; no finding text, URL or status code becomes a label.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric

from monitor.audit.result import Status
from monitor.audit.runner import AuditLoop, GroupAudit

CHECK_LABELS = ("environment", "group", "check", "class")
GROUP_LABELS = ("environment", "group")


def audit_metric_families(audits: Iterable[GroupAudit]) -> Iterator[Metric]:
    """``agentha_audit_finding`` (1: the check found a problem, 0: it passed),
    ``agentha_audit_check_error`` (1: it could not run), and per group the requests and the
    time of the last audit. Skipped checks have no series."""
    finding = GaugeMetricFamily(
        "agentha_audit_finding",
        "1 when the last security audit of an API check found a problem in the class, 0 when "
        "it passed.",
        labels=CHECK_LABELS,
    )
    error = GaugeMetricFamily(
        "agentha_audit_check_error",
        "1 when the last security audit of an API check could not run the class.",
        labels=CHECK_LABELS,
    )
    requests = GaugeMetricFamily(
        "agentha_audit_requests",
        "Requests the last security audit of the group sent.",
        labels=GROUP_LABELS,
    )
    last = GaugeMetricFamily(
        "agentha_audit_last_run_timestamp_seconds",
        "When the last security audit of the group started.",
        labels=GROUP_LABELS,
    )
    for audit in audits:
        requests.add_metric([audit.environment, audit.group], audit.requests)
        last.add_metric([audit.environment, audit.group], audit.started)
        for r in audit.results:
            labels = [audit.environment, audit.group, r.check, r.audit_class.value]
            if r.status in (Status.PASS, Status.FAIL):
                finding.add_metric(labels, 1.0 if r.status is Status.FAIL else 0.0)
            error.add_metric(labels, 1.0 if r.status is Status.ERROR else 0.0)
    yield from (finding, error, requests, last)


class AuditCollector:
    """The monitor's audit loop at scrape time: its latest audits as metric families."""

    def __init__(self, loop: AuditLoop) -> None:
        self._loop = loop

    def collect(self) -> Iterator[Metric]:
        yield from audit_metric_families(list(self._loop.latest.values()))


def group_fragment(audit: GroupAudit) -> dict[str, Any]:
    """One group's audit for the snapshot and for MQTT: results by API check and class."""
    checks: dict[str, dict[str, Any]] = {}
    for r in audit.results:
        checks.setdefault(r.check, {})[r.audit_class.value] = {
            "status": r.status.value,
            "finding": r.finding.value if r.finding else None,
            "reason": r.reason,
            "requests": r.requests,
        }
    return {
        "started": audit.started,
        "duration_s": round(audit.duration, 3),
        "requests": audit.requests,
        "request_cap": audit.request_cap,
        "failed": audit.failed,
        "findings": sum(1 for r in audit.results if r.status is Status.FAIL),
        "checks": checks,
    }


def snapshot_fragment(audits: Iterable[GroupAudit]) -> dict[str, Any]:
    """``{"ENV/GROUP": group_fragment}`` for the monitor's snapshot (key ``audit``)."""
    return {audit.id: group_fragment(audit) for audit in audits}
