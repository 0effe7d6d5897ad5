"""Exceptions of the ``monitor`` package: one root, narrow subclasses.

Foreign errors (PyYAML, pydantic, OSError) become ours at the boundary, with ``from None`` so a
chained traceback can never carry an input value (which may be a secret).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monitor.problems import Finding, Problem


class MonitorError(Exception):
    """Root of every error the monitor raises on purpose."""


class InventoryError(MonitorError):
    """The inventory file cannot be used: ``problems`` lists every error found.

    ``findings`` holds the advisory findings collected before the errors stopped the load,
    so a checker can show them too.
    """

    def __init__(self, problems: list[Problem], findings: list[Finding] | None = None) -> None:
        self.problems = list(problems)
        self.findings = list(findings or [])
        first = str(self.problems[0]) if self.problems else "invalid inventory"
        more = len(self.problems) - 1
        super().__init__(first + (f" (and {more} more)" if more > 0 else ""))
