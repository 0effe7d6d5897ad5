"""The audit checks: one async function per class, one shape, one table (``CHECKS``).

Every check is ``async def check(ctx: CheckContext) -> AuditResult``. It sends a bounded
number of requests (``monitor.audit.limits``), each on a fresh connection and, except in the
auth class, with the API check's valid credentials, so that a finding is about the property
tested and not about a missing key. Bodies are synthetic. A check never raises for the API's
fault: a request without a usable answer is an attempt that did not pass, and a check with
such attempts and no finding is ``error``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from monitor.audit import limits
from monitor.audit.raw import (
    Answer,
    Endpoint,
    Header,
    connect_failure,
    exchange,
    open_connection,
    request_head,
    send,
)
from monitor.audit.result import (
    Attempt,
    AuditClass,
    AuditResult,
    Finding,
    Outcome,
    ResultBuilder,
)
from monitor.audit.target import AuditTarget
from monitor.probes.target import ApiKeyCredentials

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
JSON_HEADERS: tuple[Header, ...] = (("Content-Type", "application/json"),)
WRONG_HOST = "audit-wrong-host.invalid"  # RFC 2606: never anyone's site
TRAVERSALS = (
    ("traversal_dotdot", "../../../../etc/passwd"),
    ("traversal_encoded", "%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd"),
)
# A value of another JSON type for each declared type.
WRONG_VALUES: dict[str, Any] = {
    "string": 12345,
    "integer": "not-a-number",
    "number": "not-a-number",
    "boolean": "not-a-boolean",
    "array": "not-an-array",
    "object": "not-an-object",
}


class Budget:
    """The requests a group audit may still send; a check takes its share before sending."""

    def __init__(self, limit: int = limits.MAX_GROUP_REQUESTS) -> None:
        self.limit = limit
        self.used = 0

    def take(self, count: int) -> bool:
        if self.used + count > self.limit:
            return False
        self.used += count
        return True


@dataclass
class CheckContext:
    """One API check's audit: its target, where to send, its valid credentials, the budget."""

    target: AuditTarget
    endpoint: Endpoint
    credentials: Sequence[Header] = field(repr=False)
    budget: Budget
    per_request_s: float = limits.REQUEST_TIMEOUT_S

    def builder(self, audit_class: AuditClass) -> ResultBuilder:
        t = self.target
        return ResultBuilder(t.environment, t.group, t.check, audit_class)

    def head(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        host: str | bytes | None = None,
        headers: Sequence[Header] = (),
        credentials: Sequence[Header] | None = None,
        keep_alive: bool = False,
    ) -> bytes:
        creds = self.credentials if credentials is None else credentials
        return request_head(
            method or self.target.api.method,
            path or self.target.api.path,
            self.endpoint.host_header if host is None else host,
            [("User-Agent", "agentha-audit"), ("Accept", "application/json"), *creds, *headers],
            keep_alive,
        )

    def call_body(self) -> tuple[bytes, list[Header]]:
        """The check's own body and content headers (empty for methods without one)."""
        if self.target.api.method not in BODY_METHODS:
            return b"", []
        body = _json(self.target.body if self.target.body is not None else {})
        return body, [*JSON_HEADERS, ("Content-Length", str(len(body)))]

    async def send(self, request: bytes, source: str | None = None) -> Answer:
        return await exchange(self.endpoint, request, self.per_request_s, source)


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def judge(
    name: str,
    expected: str,
    answer: Answer,
    passes: Callable[[Answer], bool],
    accepted: Finding,
) -> Attempt:
    """An attempt from its answer: passed, a finding (2xx accepted, 5xx, other), or neither
    (no usable answer: the check cannot tell)."""
    if passes(answer):
        return Attempt(name, expected, answer.outcome, answer.status, passed=True)
    finding = None
    if answer.outcome is Outcome.ANSWERED and answer.status is not None:
        if 200 <= answer.status < 300:
            finding = accepted
        elif answer.status >= 500:
            finding = Finding.SERVER_ERROR
        else:
            finding = Finding.UNEXPECTED_STATUS
    return Attempt(name, expected, answer.outcome, answer.status, finding=finding)


def _status_in(*codes: int) -> Callable[[Answer], bool]:
    return lambda a: a.outcome is Outcome.ANSWERED and a.status in codes


def _refused_4xx(a: Answer) -> bool:
    """A 4xx, or the server closing the connection rather than answering."""
    if a.outcome is Outcome.ANSWERED:
        return a.status is not None and 400 <= a.status < 500
    return a.outcome in (Outcome.CLOSED, Outcome.RESET)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(_json(data)).rstrip(b"=").decode()


def expired_token(now: float | None = None) -> str:
    """A well-formed JWT that expired a day ago, signed with a random key (never valid)."""
    issued = int(time.time() if now is None else now) - 2 * 86400
    header = _b64({"alg": "HS256", "typ": "JWT"})
    claims = _b64({"sub": "agentha-audit", "iat": issued, "exp": issued + 86400})
    signature = base64.urlsafe_b64encode(_random_bytes(32)).rstrip(b"=").decode()
    return f"{header}.{claims}.{signature}"


def _random_bytes(n: int) -> bytes:
    import secrets

    return secrets.token_bytes(n)


def wrong_api_key() -> str:
    """A key of the usual shape that no API issued (random, so never a real one)."""
    import secrets

    return "Audit-" + secrets.token_urlsafe(18)


# --- the checks ---


async def check_auth(ctx: CheckContext) -> AuditResult:
    """No credentials, a wrong API key, an expired and a malformed bearer token: 401/403."""
    build = ctx.builder(AuditClass.AUTH)
    auth = ctx.target.api.auth
    if auth is None:
        return build.skip("the API check has no credentials")
    if not ctx.budget.take(limits.AUTH_REQUESTS):
        return build.skip("request cap reached")
    key_header = auth.header if isinstance(auth, ApiKeyCredentials) else "X-Api-Key"
    cases: list[tuple[str, list[Header]]] = [
        ("no_credentials", []),
        ("wrong_api_key", [(key_header, wrong_api_key())]),
        ("expired_token", [("Authorization", f"Bearer {expired_token()}")]),
        ("malformed_token", [("Authorization", "Bearer not-a-token%%")]),
    ]
    body, content = ctx.call_body()
    attempts = []
    for name, creds in cases:
        answer = await ctx.send(ctx.head(headers=content, credentials=creds) + body)
        attempts.append(
            judge(name, "401 or 403", answer, _status_in(401, 403),
                  Finding.UNAUTHENTICATED_ACCEPTED)
        )  # fmt: skip
    return build.finish(attempts)


async def check_ip(ctx: CheckContext) -> AuditResult:
    """A call from ``audit_source``, outside ``ip_allow``: 403 or no connection."""
    build = ctx.builder(AuditClass.IP)
    settings = ctx.target.settings
    if not settings.ip_allow or not settings.audit_source:
        return build.skip("no ip_allow and audit_source in the inventory")
    if not ctx.budget.take(limits.IP_REQUESTS):
        return build.skip("request cap reached")
    body, content = ctx.call_body()
    answer = await ctx.send(ctx.head(headers=content) + body, source=settings.audit_source)
    if answer.outcome is Outcome.NOT_SENT:
        attempt = Attempt("outside_address", "403 or refused", Outcome.NOT_SENT, requests=0)
        return build.error(f"cannot send from audit_source {settings.audit_source}", [attempt])

    def refused(a: Answer) -> bool:
        if a.outcome is Outcome.ANSWERED:
            return a.status == 403
        return a.outcome in (Outcome.REFUSED, Outcome.RESET, Outcome.CLOSED, Outcome.TIMEOUT)

    attempt = judge(
        "outside_address", "403 or refused", answer, refused, Finding.OUTSIDE_ADDRESS_ACCEPTED
    )
    return build.finish([attempt])


async def check_methods(ctx: CheckContext) -> AuditResult:
    """Each method in ``methods_not_allowed`` on the check's path: 403 or 405, never 2xx."""
    build = ctx.builder(AuditClass.METHODS)
    methods = list(dict.fromkeys(ctx.target.settings.methods_not_allowed or ()))
    methods = methods[: limits.MAX_METHODS]
    if not methods:
        return build.skip("no methods_not_allowed in the inventory")
    if not ctx.budget.take(len(methods)):
        return build.skip("request cap reached")
    attempts = []
    for method in methods:
        body, content = b"", []
        if method in BODY_METHODS:
            body = _json(ctx.target.body if ctx.target.body is not None else {})
            content = [*JSON_HEADERS, ("Content-Length", str(len(body)))]
        answer = await ctx.send(ctx.head(method=method, headers=content) + body)
        attempts.append(
            judge(f"method_{method.lower()}", "403 or 405", answer, _status_in(403, 405),
                  Finding.METHOD_ACCEPTED)
        )  # fmt: skip
    return build.finish(attempts)


async def check_headers(ctx: CheckContext) -> AuditResult:
    """An oversized header, a control character in a value, Content-Length with
    Transfer-Encoding, and a wrong Host: 4xx or the connection closed, never 2xx or 5xx."""
    build = ctx.builder(AuditClass.HEADERS)
    if not ctx.budget.take(limits.HEADER_REQUESTS):
        return build.skip("request cap reached")
    body, content = ctx.call_body()
    padding = b"a" * limits.OVERSIZED_HEADER_BYTES
    cases: list[tuple[str, bytes]] = [
        ("oversized_header", ctx.head(headers=[*content, ("X-Audit-Padding", padding)]) + body),
        (
            "invalid_header_char",
            ctx.head(headers=[*content, ("X-Audit-Probe", b"audit\x01probe")]) + body,
        ),
        (
            "conflicting_length",
            ctx.head(
                headers=[
                    *[h for h in content if h[0] != "Content-Length"],
                    ("Content-Length", "5"),
                    ("Transfer-Encoding", "chunked"),
                ],
                keep_alive=True,  # whether the server then closes is part of the check
            )
            + b"0\r\n\r\n",
        ),
        ("wrong_host", ctx.head(host=WRONG_HOST, headers=content) + body),
    ]
    attempts = []
    for name, request in cases:
        answer = await ctx.send(request)
        passes = _length_conflict_handled if name == "conflicting_length" else _refused_4xx
        attempts.append(
            judge(name, "4xx or closed", answer, passes, Finding.FAULTY_HEADER_ACCEPTED)
        )
    return build.finish(attempts)


def _length_conflict_handled(a: Answer) -> bool:
    """Refused, or handled as RFC 9112 section 6.1 requires of a server that answers such a
    request: Transfer-Encoding wins and the connection is closed after the answer (so no
    smuggled request can follow on it). HAProxy does the latter."""
    if _refused_4xx(a):
        return True
    return a.outcome is Outcome.ANSWERED and a.status is not None and a.status < 500 and a.closes


async def check_input(ctx: CheckContext) -> AuditResult:
    """Malformed JSON, a wrong type per declared field, an oversized payload (bodies of POST,
    PUT, PATCH checks), and path traversal in a path parameter: 4xx, never 2xx or 5xx."""
    build = ctx.builder(AuditClass.INPUT)
    target = ctx.target
    settings = target.settings.input
    cases: list[tuple[str, bytes]] = []
    if target.api.method in BODY_METHODS:
        base = target.body if isinstance(target.body, dict) else {}
        malformed = b'{"audit": "synthetic", "items": ['
        cases.append(("malformed_json", _with_body(ctx, malformed)))
        types = list((settings.body_types or {}).items()) if settings else []
        for name, kind in types[: limits.MAX_TYPED_FIELDS]:
            wrong = {**base, name: WRONG_VALUES[kind]}
            cases.append((f"wrong_type_{_label(name)}", _with_body(ctx, _json(wrong))))
        filler = limits.OVERSIZED_PAYLOAD_BYTES - 16
        oversized = b'{"padding": "' + b"a" * filler + b'"}'
        cases.append(("oversized_payload", _with_body(ctx, oversized)))
    if settings is not None and settings.path is not None:
        for name, payload in TRAVERSALS:
            path = target.prefix + settings.path.replace("{param}", payload)
            cases.append((name, ctx.head(method="GET", path=path)))
    if not cases:
        return build.skip("no body to send and no input.path in the inventory")
    if not ctx.budget.take(len(cases)):
        return build.skip("request cap reached")
    attempts = []
    for name, request in cases:
        answer = await ctx.send(request)
        passes = _refused_4xx if name == "oversized_payload" else _any_4xx
        attempts.append(judge(name, "4xx", answer, passes, Finding.INVALID_INPUT_ACCEPTED))
    return build.finish(attempts)


def _any_4xx(a: Answer) -> bool:
    return a.outcome is Outcome.ANSWERED and a.status is not None and 400 <= a.status < 500


def _with_body(ctx: CheckContext, body: bytes) -> bytes:
    headers = [*JSON_HEADERS, ("Content-Length", str(len(body)))]
    return ctx.head(headers=headers) + body


def _label(name: str) -> str:
    """A field name as a bounded attempt name: letters, digits and '_' only, 40 at most."""
    return "".join(c if c.isalnum() else "_" for c in name)[:40].lower()


async def check_rate(ctx: CheckContext) -> AuditResult:
    """A burst of ``rate * 2 + burst`` calls (at most 50) sent at once: at least one 429."""
    build = ctx.builder(AuditClass.RATE)
    rate = ctx.target.settings.rate_limit
    if rate is None:
        return build.skip("no rate_limit in the inventory")
    count = limits.rate_burst(rate.rps, rate.burst)
    if count <= rate.burst:
        return build.skip(f"a burst of {count} cannot pass the configured burst {rate.burst}")
    if not ctx.budget.take(count):
        return build.skip("request cap reached")
    body, content = ctx.call_body()
    request = ctx.head(headers=content) + body
    answers = await _burst(ctx.endpoint, request, count, ctx.per_request_s)
    statuses = Counter(a.status for a in answers if a.outcome is Outcome.ANSWERED)
    failures = Counter(a.outcome.value for a in answers if a.outcome is not Outcome.ANSWERED)
    detail = ", ".join(
        [f"{n} x {s}" for s, n in sorted(statuses.items())]
        + [f"{n} x {o}" for o, n in sorted(failures.items())]
    )
    detail = f"{count} sent: {detail}"
    finding = None
    if any(s >= 500 for s in statuses):
        finding = Finding.SERVER_ERROR
    elif statuses and 429 not in statuses:
        finding = Finding.NO_RATE_LIMIT
    passed = finding is None and 429 in statuses
    attempt = Attempt(
        "burst",
        "at least one 429",
        Outcome.ANSWERED if statuses else Outcome.CLOSED,
        429 if 429 in statuses else (statuses.most_common(1)[0][0] if statuses else None),
        passed=passed,
        finding=finding,
        requests=count,
        detail=detail,
    )
    return build.finish([attempt])


async def _burst(
    endpoint: Endpoint, request: bytes, count: int, per_request_s: float
) -> list[Answer]:
    """Open ``count`` connections first, then send the request on all of them at once: the
    handshakes must not spread the burst out."""

    async def connect() -> Any:
        try:
            async with asyncio.timeout(per_request_s):
                return await open_connection(endpoint)
        except (OSError, TimeoutError) as exc:
            return Answer(connect_failure(exc))

    opened = await asyncio.gather(*(connect() for _ in range(count)))
    connections = [c for c in opened if not isinstance(c, Answer)]
    failed = [c for c in opened if isinstance(c, Answer)]

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Answer:
        try:
            async with asyncio.timeout(per_request_s):
                return await send(reader, writer, request)
        except TimeoutError:
            writer.transport.abort()
            return Answer(Outcome.TIMEOUT)

    answers = await asyncio.gather(*(one(r, w) for r, w in connections))
    return [*answers, *failed]


Check = Callable[[CheckContext], Awaitable[AuditResult]]

CHECKS: dict[AuditClass, Check] = {
    AuditClass.AUTH: check_auth,
    AuditClass.IP: check_ip,
    AuditClass.METHODS: check_methods,
    AuditClass.HEADERS: check_headers,
    AuditClass.INPUT: check_input,
    AuditClass.RATE: check_rate,
}
