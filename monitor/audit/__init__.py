"""The security audit of agent APIs: checks per class, a runner with caps, reports, metrics.

``audit_group`` runs every check class (auth, ip, methods, headers, input, rate) of each API
check of a group within ``limits.MAX_GROUP_REQUESTS`` requests and returns a ``GroupAudit``;
``reports`` writes it as JSON, JUnit XML and Markdown; ``exporters`` turns it into metric
families and a snapshot fragment for the monitor. See docs/audit.md.
"""

from __future__ import annotations

from monitor.audit.checks import CHECKS, Budget, CheckContext
from monitor.audit.result import Attempt, AuditClass, AuditResult, Finding, Outcome, Status
from monitor.audit.runner import AuditLoop, GroupAudit, audit_group, audit_inventory, select_groups

__all__ = [
    "CHECKS",
    "Attempt",
    "AuditClass",
    "AuditLoop",
    "AuditResult",
    "Budget",
    "CheckContext",
    "Finding",
    "GroupAudit",
    "Outcome",
    "Status",
    "audit_group",
    "audit_inventory",
    "select_groups",
]
