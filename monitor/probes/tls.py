"""The TLS prober: a handshake audit on fresh connections.

1. A verified handshake (chain only; the host name is checked from the certificate so both
   facts are known separately). If verification fails, an unverified handshake fetches the
   certificates anyway, so the details describe a bad certificate too.
2. Two handshakes with clients limited to TLS 1.0 and TLS 1.1: accepting either is a finding.
"""

from __future__ import annotations

import _ssl  # ENCODING_DER, for the chain objects of Python < 3.13
import asyncio
import ssl
import time
from dataclasses import dataclass, replace

from . import tlsinfo
from .contexts import legacy_context, unverified_context, verified_context
from .failures import TARGET_FAULTS, classify
from .result import ProbeResult, ProbeRun, Reason, Scalar, TlsDetails
from .session import ProbeSession
from .target import ProbeTarget

# OpenSSL checks trust before validity dates: a date error means the chain itself was trusted.
_DATE_ERRORS = frozenset({9, 10})

# Failures after which the server did answer a TLS ClientHello, so legacy checks make sense.
_SERVER_SPOKE = frozenset(
    {
        Reason.CERT_EXPIRED,
        Reason.CERT_NOT_YET_VALID,
        Reason.CERT_UNTRUSTED,
        Reason.CERT_HOSTNAME,
        Reason.TLS_VERSION,
        Reason.TLS_HANDSHAKE,
    }
)


@dataclass(frozen=True, slots=True)
class Handshake:
    version: str | None
    cipher: str | None
    chain: tuple[bytes, ...]  # DER, leaf first, as the server sent it


async def handshake(target: ProbeTarget, context: ssl.SSLContext) -> Handshake:
    """One TLS handshake on a fresh connection, closed at once; errors are ``OSError``s."""
    _, writer = await asyncio.open_connection(
        target.host, target.port, ssl=context, server_hostname=target.expected_name
    )
    try:
        tls = writer.get_extra_info("ssl_object")
        cipher = tls.cipher()
        return Handshake(tls.version(), cipher[0] if cipher else None, _peer_chain(tls))
    finally:
        writer.transport.abort()


def _peer_chain(tls: ssl.SSLObject) -> tuple[bytes, ...]:
    # Python 3.13 made get_unverified_chain() public (DER bytes); 3.11 and 3.12 have it on
    # the inner object (certificate objects). Without either, the leaf alone.
    public = getattr(tls, "get_unverified_chain", None)
    if public is not None:
        return tuple(public())
    inner = getattr(getattr(tls, "_sslobj", None), "get_unverified_chain", None)
    if inner is not None:
        return tuple(c.public_bytes(_ssl.ENCODING_DER) for c in inner() or ())
    leaf = tls.getpeercert(binary_form=True)
    return (leaf,) if leaf else ()


async def _accepts_legacy(
    target: ProbeTarget, version: ssl.TLSVersion, deadline: float
) -> tuple[bool | None, Handshake | None]:
    """Whether the server completes a handshake at exactly ``version``; None if unknown."""
    try:
        async with asyncio.timeout_at(deadline):
            return True, await handshake(target, legacy_context(version))
    except (ssl.SSLError, ConnectionResetError):  # refused at the TLS layer, or cut off
        return False, None
    except TARGET_FAULTS:
        return None, None


def _describe(target: ProbeTarget, shake: Handshake | None) -> TlsDetails:
    """Protocol and certificate fields; whatever could not be read stays None."""
    if shake is None:
        return TlsDetails()
    try:
        certs = [tlsinfo.load_der(der) for der in shake.chain]
    except ValueError:  # not a certificate we can parse: leave the fields unmeasured
        certs = []
    if not certs:
        return TlsDetails(version=shake.version, cipher=shake.cipher)
    leaf = certs[0]
    # Days left count to the earliest expiry: an intermediate that lapses breaks the chain too.
    expiry = tlsinfo.earliest_expiry(certs)
    days = tlsinfo.days_left(expiry, time.time())
    return TlsDetails(
        version=shake.version,
        cipher=shake.cipher,
        hostname_matches=tlsinfo.hostname_matches(leaf, target.expected_name),
        subject=tlsinfo.subject(leaf),
        issuer=tlsinfo.issuer(leaf),
        sans=tlsinfo.sans(leaf),
        serial=tlsinfo.serial(leaf),
        fingerprint_sha256=tlsinfo.fingerprint_sha256(leaf),
        not_before=tlsinfo.not_before(leaf),
        not_after=tlsinfo.not_after(leaf),
        earliest_chain_expiry=expiry,
        chain_length=len(certs),
        days_left=days,
        expiry_window=tlsinfo.expiry_window(
            days, target.expiry_warning_days, target.expiry_critical_days
        ),
    )


async def probe_tls(target: ProbeTarget, session: ProbeSession, deadline: float) -> ProbeResult:
    """Audit the TLS endpoint; ``deadline`` (event-loop time) bounds all handshakes."""
    run = ProbeRun("tls", target.id)
    if target.scheme != "https":
        return run.finish(Reason.NOT_HTTPS)
    failure: tuple[Reason, dict[str, Scalar]] | None = None
    shake: Handshake | None = None
    trusted: bool | None = None
    verify_error: str | None = None
    try:
        async with asyncio.timeout_at(deadline):
            try:
                context = verified_context(target.ca_bundle, target.min_tls_version, False)
                shake = await handshake(target, context)
                trusted = True
            except ssl.SSLCertVerificationError as exc:
                failure = classify(exc)
                trusted = exc.verify_code in _DATE_ERRORS
                verify_error = exc.verify_message
                shake = await handshake(target, unverified_context(target.min_tls_version))
    except TARGET_FAULTS as exc:
        failure = failure or classify(exc)
    if failure is not None and failure[0] not in _SERVER_SPOKE:
        return run.finish(failure[0], **failure[1])

    (tls10, shake10), (tls11, shake11) = await asyncio.gather(
        _accepts_legacy(target, ssl.TLSVersion.TLSv1, deadline),
        _accepts_legacy(target, ssl.TLSVersion.TLSv1_1, deadline),
    )
    # A server that speaks only legacy versions still shows its certificate.
    shake = shake or shake11 or shake10
    details = replace(
        _describe(target, shake),
        chain_trusted=trusted,
        verify_error=verify_error,
        tls10_accepted=tls10,
        tls11_accepted=tls11,
    )
    if failure is not None:
        return run.finish(failure[0], details=details, **failure[1])
    if details.hostname_matches is False:
        return run.finish(Reason.CERT_HOSTNAME, details=details, server_name=target.expected_name)
    if tls10 or tls11:
        return run.finish(
            Reason.LEGACY_TLS_ACCEPTED, details=details, tls10=bool(tls10), tls11=bool(tls11)
        )
    return run.finish(Reason.OK, details=details)
