"""What every prober returns: one result, one enumerated reason, key/value context.

A value that was not measured stays ``None``, never ``0``: a missing number must not look like a
measured zero on a dashboard.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

Scalar = str | int | float | bool | None


class Reason(StrEnum):
    """Why a probe ended. Bounded on purpose: safe as a metric label and an event reason."""

    OK = "ok"
    PAUSED = "paused"
    UNAUTHORIZED = "unauthorized"
    HTTP_STATUS = "http_status"
    DNS = "dns"
    REFUSED = "refused"
    RESET = "reset"
    CONNECT_FAILED = "connect_failed"
    TIMEOUT = "timeout"
    NO_RESPONSE = "no_response"
    BAD_RESPONSE = "bad_response"
    BODY_TOO_LARGE = "body_too_large"
    NOT_HTTPS = "not_https"
    TLS_HANDSHAKE = "tls_handshake"
    TLS_VERSION = "tls_version"
    CERT_EXPIRED = "cert_expired"
    CERT_NOT_YET_VALID = "cert_not_yet_valid"
    CERT_UNTRUSTED = "cert_untrusted"
    CERT_HOSTNAME = "cert_hostname"
    LEGACY_TLS_ACCEPTED = "legacy_tls_accepted"
    PLAINTEXT_SERVED = "plaintext_served"
    HTTP_PORT_OPEN = "http_port_open"
    UNEXPECTED_STATUS = "unexpected_status"
    UNAUTHENTICATED_ACCEPTED = "unauthenticated_accepted"
    TOKEN_REJECTED = "token_rejected"  # noqa: S105 (a reason name, not a password)
    TOKEN_FAILED = "token_failed"  # noqa: S105

    @property
    def message(self) -> str:
        """The fixed, human-readable message for this reason."""
        return _MESSAGES[self]


_MESSAGES: dict[Reason, str] = {
    Reason.OK: "probe succeeded",
    Reason.PAUSED: "agent is paused (status 503)",
    Reason.UNAUTHORIZED: "status endpoint rejected the health-check API key",
    Reason.HTTP_STATUS: "unexpected HTTP status",
    Reason.DNS: "host name did not resolve",
    Reason.REFUSED: "connection refused",
    Reason.RESET: "connection reset by peer",
    Reason.CONNECT_FAILED: "connection failed",
    Reason.TIMEOUT: "probe timed out",
    Reason.NO_RESPONSE: "connection closed without a response",
    Reason.BAD_RESPONSE: "response is not valid HTTP/1.1",
    Reason.BODY_TOO_LARGE: "response body exceeds the limit",
    Reason.NOT_HTTPS: "target is not configured for HTTPS",
    Reason.TLS_HANDSHAKE: "TLS handshake failed",
    Reason.TLS_VERSION: "no acceptable TLS protocol version",
    Reason.CERT_EXPIRED: "certificate has expired",
    Reason.CERT_NOT_YET_VALID: "certificate is not yet valid",
    Reason.CERT_UNTRUSTED: "certificate chain is not trusted",
    Reason.CERT_HOSTNAME: "certificate does not match the host name",
    Reason.LEGACY_TLS_ACCEPTED: "server accepts TLS 1.0 or TLS 1.1",
    Reason.PLAINTEXT_SERVED: "TLS port answers plain HTTP",
    Reason.HTTP_PORT_OPEN: "plain-HTTP port serves content instead of redirecting to https",
    Reason.UNEXPECTED_STATUS: "API answered with an unexpected HTTP status",
    Reason.UNAUTHENTICATED_ACCEPTED: "API accepted a call without credentials",
    Reason.TOKEN_REJECTED: "token endpoint rejected the client credentials",
    Reason.TOKEN_FAILED: "could not obtain an access token",
}


@dataclass(frozen=True, slots=True)
class StatusDetails:
    """What the status probe learnt besides the HTTP status."""

    connection_reused: bool
    body_bytes: int | None = None
    body_is_json: bool | None = None
    executing_processes: int | None = None
    memory_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class TlsDetails:
    """The handshake audit; certificate fields are filled even when verification fails.

    Times are UNIX timestamps. ``expiry_window`` is ``ok``, ``warning``, ``critical`` or
    ``expired`` against the target's warning/critical days; the state logic decides severity.
    """

    version: str | None = None
    cipher: str | None = None
    chain_trusted: bool | None = None
    verify_error: str | None = None
    hostname_matches: bool | None = None
    subject: str | None = None
    issuer: str | None = None
    sans: tuple[str, ...] = ()
    serial: str | None = None
    fingerprint_sha256: str | None = None
    not_before: float | None = None
    not_after: float | None = None
    earliest_chain_expiry: float | None = None
    chain_length: int | None = None
    days_left: float | None = None
    expiry_window: str | None = None
    tls10_accepted: bool | None = None
    tls11_accepted: bool | None = None


class PortVerdict(StrEnum):
    """What a port did with a plain HTTP request."""

    CLOSED = "closed"  # connection refused
    SILENT = "silent"  # accepted but gave no HTTP answer (TLS alert, close, reset, timeout)
    REDIRECTS_HTTPS = "redirects_https"  # 3xx to an https:// Location
    SERVES_HTTP = "serves_http"  # any other HTTP response


@dataclass(frozen=True, slots=True)
class PortFinding:
    """One port of the plaintext audit."""

    port: int
    verdict: PortVerdict
    http_status: int | None = None
    location: str | None = None


@dataclass(frozen=True, slots=True)
class PlaintextDetails:
    """The TLS port's finding first, then one per configured plain-HTTP port."""

    tls_port: PortFinding
    http_ports: tuple[PortFinding, ...] = ()


class TokenUse(StrEnum):
    """Where this run's OAuth2 access token came from."""

    FETCHED = "fetched"  # none cached, or the cached one was due for refresh
    REUSED = "reused"  # the cached token, still valid
    REFRESHED = "refreshed"  # the cached token got a 401: a new one was fetched, the call repeated


@dataclass(frozen=True, slots=True)
class ApiCallDetails:
    """One API check call (entrypoint or auth). Latencies in seconds; the body is not kept.

    ``latency`` covers connect, TLS handshake, request and response of the (last) API call;
    ``token_latency`` the token request of this run, if one was made.
    """

    status: int | None = None
    latency: float | None = None
    body_bytes: int | None = None
    token: TokenUse | None = None  # None: no OAuth2 on this call
    token_latency: float | None = None


Details = StatusDetails | TlsDetails | PlaintextDetails | ApiCallDetails


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe run. ``context`` holds bounded key/value facts about a failure; never secrets."""

    probe: str
    target: str
    reason: Reason
    started: float
    duration: float
    http_status: int | None = None
    details: Details | None = None
    context: Mapping[str, Scalar] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.reason is Reason.OK

    @property
    def message(self) -> str:
        return self.reason.message


class ProbeRun:
    """Times one probe and builds its result; started as the probe begins."""

    __slots__ = ("_t0", "probe", "started", "target")

    def __init__(self, probe: str, target: str) -> None:
        self.probe = probe
        self.target = target
        self.started = time.time()
        self._t0 = time.monotonic()

    def finish(
        self,
        reason: Reason,
        *,
        http_status: int | None = None,
        details: Details | None = None,
        **context: Scalar,
    ) -> ProbeResult:
        return ProbeResult(
            probe=self.probe,
            target=self.target,
            reason=reason,
            started=self.started,
            duration=time.monotonic() - self._t0,
            http_status=http_status,
            details=details,
            context=context,
        )
