"""What every audit check returns: one result shape, enumerated findings, no request data.

A result holds the answers' status codes and fixed words only: never a header, a body, a
token or a key, so reports and metrics built from it cannot leak what was sent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum


class AuditClass(StrEnum):
    """The check classes, in the order a check runs them (rate last: it drains the bucket)."""

    AUTH = "auth"
    IP = "ip"
    METHODS = "methods"
    HEADERS = "headers"
    INPUT = "input"
    RATE = "rate"


class Status(StrEnum):
    PASS = "pass"  # noqa: S105 (a status, not a password)
    FAIL = "fail"  # a finding
    ERROR = "error"  # could not run (the API did not answer, no token...)
    SKIPPED = "skipped"  # switched off, not configured, not applicable, or over the cap


class Finding(StrEnum):
    """Why a check failed. Bounded on purpose: safe as a metric label and an alert reason."""

    UNAUTHENTICATED_ACCEPTED = "unauthenticated_accepted"
    OUTSIDE_ADDRESS_ACCEPTED = "outside_address_accepted"
    METHOD_ACCEPTED = "method_accepted"
    NO_RATE_LIMIT = "no_rate_limit"
    FAULTY_HEADER_ACCEPTED = "faulty_header_accepted"
    INVALID_INPUT_ACCEPTED = "invalid_input_accepted"
    SERVER_ERROR = "server_error"  # a 5xx where a 4xx refusal belongs
    UNEXPECTED_STATUS = "unexpected_status"  # neither the refusal expected nor an acceptance

    @property
    def message(self) -> str:
        return _MESSAGES[self]


_MESSAGES = {
    Finding.UNAUTHENTICATED_ACCEPTED: "API accepted a call without valid credentials",
    Finding.OUTSIDE_ADDRESS_ACCEPTED: "API accepted a call from outside its IP allow-list",
    Finding.METHOD_ACCEPTED: "API accepted a method it should refuse",
    Finding.NO_RATE_LIMIT: "API answered no 429 to a burst past its rate limit",
    Finding.FAULTY_HEADER_ACCEPTED: "API accepted a request with a faulty header",
    Finding.INVALID_INPUT_ACCEPTED: "API accepted invalid input",
    Finding.SERVER_ERROR: "API answered a refusable request with a server error (5xx)",
    Finding.UNEXPECTED_STATUS: "API answered with an unexpected status",
}
# The worst finding of a check is reported: an acceptance before a crash before oddities.
SEVERITY = {finding: rank for rank, finding in enumerate(Finding)}


class Outcome(StrEnum):
    """What happened to one request."""

    ANSWERED = "answered"
    CLOSED = "closed"  # the server closed the connection without an answer
    RESET = "reset"
    REFUSED = "refused"  # connection refused
    TIMEOUT = "timeout"
    TLS_FAILED = "tls_failed"
    BAD_ANSWER = "bad_answer"  # not an HTTP/1.x answer
    NOT_SENT = "not_sent"  # e.g. the source address could not be used


@dataclass(frozen=True, slots=True)
class Attempt:
    """One request (or one burst) of a check and how it was judged."""

    name: str  # fixed: "no_credentials", "method_delete", "wrong_type_customer"...
    expected: str  # fixed words: "401 or 403"
    outcome: Outcome
    status: int | None = None
    passed: bool = False
    finding: Finding | None = None
    requests: int = 1
    detail: str | None = None  # bounded, built from status codes only


@dataclass(frozen=True, slots=True)
class AuditResult:
    """One check class run against one API check of one group."""

    environment: str
    group: str
    check: str  # the inventory's API check name
    audit_class: AuditClass
    status: Status
    started: float
    duration: float
    attempts: tuple[Attempt, ...] = ()
    finding: Finding | None = None
    reason: str | None = None  # why skipped or errored: fixed words
    requests: int = 0

    @property
    def group_id(self) -> str:
        return f"{self.environment}/{self.group}"

    @property
    def id(self) -> str:
        """``ENV/GROUP:CHECK/CLASS``."""
        return f"{self.group_id}:{self.check}/{self.audit_class}"

    @property
    def message(self) -> str:
        if self.finding is not None:
            return self.finding.message
        return self.reason or self.status.value


@dataclass(slots=True)
class ResultBuilder:
    """Times a check and turns its attempts into the one result."""

    environment: str
    group: str
    check: str
    audit_class: AuditClass
    started: float = field(default_factory=time.time)
    _t0: float = field(default_factory=time.monotonic)

    def finish(self, attempts: list[Attempt], reason: str | None = None) -> AuditResult:
        findings = [a.finding for a in attempts if a.finding is not None]
        if findings:
            status, finding = Status.FAIL, min(findings, key=SEVERITY.__getitem__)
        elif any(not a.passed for a in attempts):
            status, finding = Status.ERROR, None
            reason = reason or "no usable answer"
        else:
            status, finding = Status.PASS, None
        return self._result(status, tuple(attempts), finding, reason)

    def skip(self, reason: str) -> AuditResult:
        return self._result(Status.SKIPPED, (), None, reason)

    def error(self, reason: str, attempts: list[Attempt] | None = None) -> AuditResult:
        return self._result(Status.ERROR, tuple(attempts or ()), None, reason)

    def _result(
        self,
        status: Status,
        attempts: tuple[Attempt, ...],
        finding: Finding | None,
        reason: str | None,
    ) -> AuditResult:
        return AuditResult(
            environment=self.environment,
            group=self.group,
            check=self.check,
            audit_class=self.audit_class,
            status=status,
            started=self.started,
            duration=time.monotonic() - self._t0,
            attempts=attempts,
            finding=finding,
            reason=reason,
            requests=sum(a.requests for a in attempts if a.outcome is not Outcome.NOT_SENT),
        )
