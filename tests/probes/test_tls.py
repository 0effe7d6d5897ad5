"""The TLS audit against local servers: Python's ssl for certificate cases, openssl s_server
for servers that speak only TLS 1.0 or TLS 1.1."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from monitor.probes import ProbeSession, ProbeTarget, Reason, TlsDetails, probe_tls, tlsinfo

from .conftest import Serve
from .helpers import check, closed_port, deadline
from .pki import DAY, Leaf, Pki

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(30)]

OpenSsl = Callable[..., int]


def target(port: int, pki: Pki, **overrides) -> ProbeTarget:
    return ProbeTarget(
        id="prod/g/a", host="127.0.0.1", port=port, ca_bundle=pki.ca_file, **overrides
    )


async def audit(port: int, pki: Pki, **overrides):
    return await probe_tls(target(port, pki, **overrides), ProbeSession(), deadline(5))


async def idle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()


def assert_describes(details: TlsDetails | None, leaf: Leaf) -> None:
    """The certificate fields were captured, whatever the verdict."""
    assert details is not None
    assert details.subject == tlsinfo.subject(leaf.cert)
    assert details.issuer == tlsinfo.issuer(leaf.cert)
    assert details.sans == tlsinfo.sans(leaf.cert)
    assert details.serial == tlsinfo.serial(leaf.cert)
    assert details.fingerprint_sha256 == tlsinfo.fingerprint_sha256(leaf.cert)
    assert details.not_before == tlsinfo.not_before(leaf.cert)
    assert details.not_after == tlsinfo.not_after(leaf.cert)
    assert details.version is not None and details.cipher is not None


async def test_valid_certificate(serve: Serve, pki: Pki, good_leaf: Leaf) -> None:
    port = await serve(idle, good_leaf.server_context())
    result = await audit(port, pki)
    check(
        result,
        Reason.OK,
        version="TLSv1.3",
        chain_trusted=True,
        verify_error=None,
        hostname_matches=True,
        chain_length=1,
        expiry_window="ok",
        tls10_accepted=False,
        tls11_accepted=False,
    )
    assert_describes(result.details, good_leaf)
    assert 363 < result.details.days_left < 366


@pytest.mark.parametrize(
    ("validity", "reason", "window"),
    [
        ({"valid_from": -30 * DAY, "valid_to": -DAY}, Reason.CERT_EXPIRED, "expired"),
        ({"valid_from": DAY, "valid_to": 30 * DAY}, Reason.CERT_NOT_YET_VALID, "warning"),
    ],
    ids=["expired", "not-yet-valid"],
)
async def test_certificate_dates(serve: Serve, pki: Pki, validity, reason, window) -> None:
    leaf = pki.leaf(**validity)
    port = await serve(idle, leaf.server_context())
    result = await audit(port, pki)
    check(result, reason, chain_trusted=True, hostname_matches=True, expiry_window=window)
    assert result.details.verify_error == result.context["verify_error"]
    assert_describes(result.details, leaf)


async def test_wrong_host(serve: Serve, pki: Pki) -> None:
    leaf = pki.leaf(("agent9.example",))
    port = await serve(idle, leaf.server_context())
    result = await audit(port, pki)
    check(result, Reason.CERT_HOSTNAME, chain_trusted=True, hostname_matches=False)
    assert result.context["server_name"] == "127.0.0.1"
    assert_describes(result.details, leaf)


async def test_server_name_is_what_is_checked(serve: Serve, pki: Pki) -> None:
    leaf = pki.leaf(("agent9.example",))
    port = await serve(idle, leaf.server_context())
    check(await audit(port, pki, server_name="agent9.example"), Reason.OK, hostname_matches=True)


async def test_self_signed_untrusted(serve: Serve, pki: Pki) -> None:
    leaf = pki.leaf(self_signed=True)
    port = await serve(idle, leaf.server_context())
    result = await audit(port, pki)
    check(result, Reason.CERT_UNTRUSTED, chain_trusted=False, hostname_matches=True)
    assert result.context["verify_code"] == 18
    assert_describes(result.details, leaf)


@pytest.mark.parametrize(("days", "window"), [(20, "warning"), (5, "critical")])
async def test_expiring_soon_is_reported_not_failed(
    serve: Serve, pki: Pki, days: int, window: str
) -> None:
    leaf = pki.leaf(valid_to=days * DAY)
    port = await serve(idle, leaf.server_context())
    result = await audit(port, pki)
    check(result, Reason.OK, expiry_window=window)
    assert days - 1 < result.details.days_left <= days


async def test_intermediate_expiring_first(serve: Serve, pki: Pki) -> None:
    leaf = pki.leaf(valid_to=300 * DAY, intermediate_valid_to=10 * DAY)
    port = await serve(idle, leaf.server_context())
    result = await audit(port, pki)
    check(
        result,
        Reason.OK,
        chain_length=2,
        expiry_window="warning",
        earliest_chain_expiry=tlsinfo.not_after(leaf.chain[0]),
        not_after=tlsinfo.not_after(leaf.cert),
    )


async def test_below_minimum_version(openssl_server: OpenSsl, pki: Pki, good_leaf: Leaf) -> None:
    # openssl, not asyncio: asyncio's server drops the connection without sending the alert.
    port = openssl_server(good_leaf, "-tls1_2")
    result = await audit(port, pki, min_tls_version="1.3")
    check(result, Reason.TLS_VERSION, tls10_accepted=False, tls11_accepted=False)


async def test_refused(pki: Pki) -> None:
    check(await audit(closed_port(), pki), Reason.REFUSED, details=None)


async def test_not_https(pki: Pki) -> None:
    check(await audit(closed_port(), pki, scheme="http"), Reason.NOT_HTTPS, details=None)


@pytest.mark.parametrize(
    ("flag", "tls10", "tls11"), [("-tls1", True, False), ("-tls1_1", False, True)]
)
async def test_legacy_only_server(
    openssl_server: OpenSsl, pki: Pki, good_leaf: Leaf, flag: str, tls10: bool, tls11: bool
) -> None:
    port = openssl_server(good_leaf, flag, "-cipher", "DEFAULT@SECLEVEL=0")
    result = await audit(port, pki)
    check(
        result,
        Reason.TLS_VERSION,
        tls10_accepted=tls10,
        tls11_accepted=tls11,
        chain_trusted=None,
        hostname_matches=True,
    )
    assert result.details.version == ("TLSv1" if tls10 else "TLSv1.1")
    assert_describes(result.details, good_leaf)  # read from the legacy handshake


async def test_server_also_accepting_legacy(
    openssl_server: OpenSsl, pki: Pki, good_leaf: Leaf
) -> None:
    port = openssl_server(good_leaf, "-min_protocol", "TLSv1", "-cipher", "DEFAULT@SECLEVEL=0")
    result = await audit(port, pki)
    check(
        result,
        Reason.LEGACY_TLS_ACCEPTED,
        version="TLSv1.3",
        chain_trusted=True,
        tls10_accepted=True,
        tls11_accepted=True,
    )
    assert result.context == {"tls10": True, "tls11": True}


async def test_openssl_untrusted_self_signed(openssl_server: OpenSsl, pki: Pki) -> None:
    leaf = pki.leaf(self_signed=True)
    port = openssl_server(leaf)
    result = await audit(port, pki)
    check(
        result,
        Reason.CERT_UNTRUSTED,
        chain_trusted=False,
        tls10_accepted=False,
        tls11_accepted=False,
    )
    assert_describes(result.details, leaf)
