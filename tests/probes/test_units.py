"""Pure pieces: certificate getters, the status body parser, error classification."""

from __future__ import annotations

import datetime as dt
import inspect
import json
import socket
import ssl

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from monitor.probes import AGENT_PROBERS, API_CHECK_PROBERS, PROBERS, Reason, tlsinfo
from monitor.probes.failures import classify
from monitor.probes.httpclient import BadResponse, BodyTooLarge, NoResponse
from monitor.probes.status import parse_status_body

from .pki import DAY, Pki

pytestmark = pytest.mark.timeout(10)


def test_certificate_getters(pki: Pki) -> None:
    leaf = pki.leaf(("agent1.example", "127.0.0.1"), valid_to=40 * DAY)
    cert = tlsinfo.load_der(leaf.cert.public_bytes(Encoding.DER))
    assert tlsinfo.subject(cert) == "CN=agent1.example"
    assert tlsinfo.issuer(cert) == "CN=agentha test CA"
    assert tlsinfo.sans(cert) == ("agent1.example", "127.0.0.1")
    assert tlsinfo.serial(cert) == format(leaf.cert.serial_number, "x")
    assert len(tlsinfo.fingerprint_sha256(cert)) == 64
    assert tlsinfo.not_before(cert) == leaf.cert.not_valid_before_utc.timestamp()
    assert tlsinfo.not_after(cert) - tlsinfo.not_before(cert) == 41 * 86400


def test_sans_absent(pki: Pki) -> None:
    assert tlsinfo.sans(pki.ca) == ()
    assert tlsinfo.hostname_matches(pki.ca, "agentha test CA") is False  # no CN fallback


def test_earliest_expiry(pki: Pki) -> None:
    leaf = pki.leaf(valid_to=300 * DAY, intermediate_valid_to=20 * DAY)
    chain = [leaf.cert, *leaf.chain]
    assert tlsinfo.earliest_expiry(chain) == tlsinfo.not_after(leaf.chain[0])
    assert tlsinfo.earliest_expiry([leaf.cert]) == tlsinfo.not_after(leaf.cert)


def test_days_left_and_window() -> None:
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC).timestamp()
    assert tlsinfo.days_left(now + 10 * 86400, now) == 10
    assert tlsinfo.days_left(now - 86400, now) == -1
    assert [tlsinfo.expiry_window(d, 30, 7) for d in (-1, 0, 7, 8, 30, 31)] == [
        "expired",
        "expired",
        "critical",
        "warning",
        "warning",
        "ok",
    ]


@pytest.mark.parametrize(
    ("name", "matches"),
    [
        ("agent1.example", True),
        ("AGENT1.example.", True),
        ("a.wild.example", True),
        ("wild.example", False),
        ("a.b.wild.example", False),
        ("127.0.0.1", True),
        ("127.0.0.2", False),
        ("::1", False),
        ("other.example", False),
    ],
)
def test_hostname_matches(pki: Pki, name: str, matches: bool) -> None:
    leaf = pki.leaf(("agent1.example", "*.wild.example", "127.0.0.1"))
    assert tlsinfo.hostname_matches(leaf.cert, name) is matches


@pytest.mark.parametrize(
    ("body", "json_", "processes", "memory"),
    [
        (b'{"ExecutingProcesses": 4, "MemoryUsage": 1000}', True, 4, 1000),
        (b'{"executing_processes": 2, "working-set-mb": 1.5}', True, 2, 1572864),
        (b'{"ExecutingProcesses": true, "memory": -5}', True, None, None),
        (b'{"ExecutingProcesses": NaN, "memory": 1e999}', True, None, None),
        (b'{"ExecutingProcesses": "4"}', True, None, None),
        (b"[1, 2]", True, None, None),
        (b"", False, None, None),
        (b"running", False, None, None),
        (b"\xff\xfe", False, None, None),
        (b"[" * 100000, False, None, None),
        (b'\xef\xbb\xbf{"ExecutingProcesses": 3}', True, 3, None),  # UTF-8 with a BOM
        ('{"ExecutingProcesses": 5}'.encode("utf-16"), True, 5, None),  # JSON allows UTF-16
    ],
)
def test_parse_status_body(body: bytes, json_: bool, processes, memory) -> None:
    details = parse_status_body(body, connection_reused=True)
    assert (details.body_is_json, details.executing_processes, details.memory_bytes) == (
        json_,
        processes,
        memory,
    )
    assert details.body_bytes == len(body) and details.connection_reused is True


def _verify_error(code: int) -> ssl.SSLCertVerificationError:
    exc = ssl.SSLCertVerificationError(1, "certificate verify failed")
    exc.verify_code, exc.verify_message = code, "message"
    return exc


def _ssl_error(reason: str) -> ssl.SSLError:
    exc = ssl.SSLError(1, reason)
    exc.reason = reason
    return exc


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (BodyTooLarge(), Reason.BODY_TOO_LARGE),
        (NoResponse(), Reason.NO_RESPONSE),
        (BadResponse("x"), Reason.BAD_RESPONSE),
        (TimeoutError(), Reason.TIMEOUT),
        (socket.gaierror(-2, "Name or service not known"), Reason.DNS),
        (ConnectionRefusedError(), Reason.REFUSED),
        (ConnectionResetError(), Reason.RESET),
        (BrokenPipeError(), Reason.RESET),
        (_verify_error(10), Reason.CERT_EXPIRED),
        (_verify_error(9), Reason.CERT_NOT_YET_VALID),
        (_verify_error(62), Reason.CERT_HOSTNAME),
        (_verify_error(64), Reason.CERT_HOSTNAME),
        (_verify_error(20), Reason.CERT_UNTRUSTED),
        (_ssl_error("TLSV1_ALERT_PROTOCOL_VERSION"), Reason.TLS_VERSION),
        (_ssl_error("SSLV3_ALERT_HANDSHAKE_FAILURE"), Reason.TLS_HANDSHAKE),
        (OSError(113, "No route to host"), Reason.CONNECT_FAILED),
    ],
)
def test_classify(exc: Exception, reason: Reason) -> None:
    got, context = classify(exc)  # type: ignore[arg-type]
    assert got is reason
    json.dumps(context)  # plain values only


def test_probers_table() -> None:
    assert set(PROBERS) == {"status", "tls", "plaintext", "entrypoint", "auth"}
    assert set(PROBERS) == AGENT_PROBERS | API_CHECK_PROBERS
    assert not AGENT_PROBERS & API_CHECK_PROBERS
    for name, prober in PROBERS.items():
        assert list(inspect.signature(prober).parameters) == ["target", "session", "deadline"]
        assert prober.__name__ == f"probe_{name}"


def test_status_body_keys_do_not_grow_the_key_cache_without_bound() -> None:
    from monitor.probes import status

    for i in range(3 * status._KEY_NAMES_MAX):
        parse_status_body(b'{"k%d": 1, "Memory_MB": 2}' % i, connection_reused=False)
    assert len(status._KEY_NAMES) <= status._KEY_NAMES_MAX
    # Keys past the bound are still read, just not remembered.
    assert parse_status_body(b'{"Memory_MB": 2}', False).memory_bytes == 2 * 1024 * 1024
