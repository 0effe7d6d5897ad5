"""The auth prober: the API check's call without credentials must be refused with 401/403."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.probes import (
    ApiCheckTarget,
    ApiKeyCredentials,
    OAuth2Credentials,
    ProbeSession,
    Reason,
    probe_auth,
)

from .apiserver import Request, assert_hidden, recording
from .conftest import Serve
from .helpers import check, closed_port, deadline, response
from .pki import Leaf, Pki

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(20)]

CANARY = "Canary-Auth-Secret-4k!Q"


def api_key() -> ApiKeyCredentials:
    return ApiKeyCredentials("X-Api-Key", CANARY)


def oauth2(pki: Pki) -> OAuth2Credentials:
    # Never contacted: the auth probe sends no credentials, so it needs no token.
    url = f"https://127.0.0.1:{closed_port()}/token"
    return OAuth2Credentials(url, "agentha-monitor", CANARY, ca_bundle=pki.ca_file)


def target(port: int, pki: Pki, **overrides: Any) -> ApiCheckTarget:
    settings: dict[str, Any] = {
        "group": "test/orders",
        "check": "list-orders",
        "host": "127.0.0.1",
        "port": port,
        "path": "/api/orders",
        "ca_bundle": pki.ca_file,
        "auth": api_key(),
    }
    return ApiCheckTarget(**(settings | overrides))


async def probe(check_target: ApiCheckTarget, seconds: float = 3.0):
    session = ProbeSession()
    try:
        return await probe_auth(check_target, session, deadline(seconds))
    finally:
        assert session.oauth_token is None
        session.close()


async def serve_status(serve: Serve, leaf: Leaf, status: int, seen: list[Request]) -> int:
    return await serve(recording(lambda r: response(status), seen), leaf.server_context())


@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize("kind", ["api_key", "oauth2"])
async def test_refused_is_ok(
    serve: Serve, pki: Pki, good_leaf: Leaf, status: int, kind: str
) -> None:
    seen: list[Request] = []
    port = await serve_status(serve, good_leaf, status, seen)
    auth = api_key() if kind == "api_key" else oauth2(pki)
    check_target = target(port, pki, auth=auth)
    result = await probe(check_target)
    check(result, Reason.OK, ok=True, http_status=status, status=status, token=None)
    assert result.probe == "auth" and result.target == "test/orders:list-orders"
    assert result.details.latency > 0
    (request,) = seen
    assert request.line == "GET /api/orders HTTP/1.1"
    assert "x-api-key" not in request.headers and "authorization" not in request.headers
    assert_hidden(CANARY, result, check_target, auth)


@pytest.mark.parametrize("status", [200, 204])
async def test_accepted_without_credentials(
    serve: Serve, pki: Pki, good_leaf: Leaf, status: int
) -> None:
    port = await serve_status(serve, good_leaf, status, [])
    result = await probe(target(port, pki))
    check(result, Reason.UNAUTHENTICATED_ACCEPTED, ok=False, http_status=status)
    assert_hidden(CANARY, result)


async def test_expected_status_without_credentials(serve: Serve, pki: Pki, good_leaf: Leaf) -> None:
    port = await serve_status(serve, good_leaf, 302, [])
    check(await probe(target(port, pki, expect_status=302)), Reason.UNAUTHENTICATED_ACCEPTED)


@pytest.mark.parametrize("status", [404, 500, 302])
async def test_other_status(serve: Serve, pki: Pki, good_leaf: Leaf, status: int) -> None:
    port = await serve_status(serve, good_leaf, status, [])
    result = await probe(target(port, pki))
    check(result, Reason.UNEXPECTED_STATUS, http_status=status, status=status)
    assert result.context == {"expected": "401 or 403"}


async def test_same_request_with_body(serve: Serve, pki: Pki, good_leaf: Leaf) -> None:
    seen: list[Request] = []
    port = await serve_status(serve, good_leaf, 401, seen)
    body = {"customer": "c-1"}
    check(await probe(target(port, pki, method="POST", body=body)), Reason.OK)
    assert seen[0].line == "POST /api/orders HTTP/1.1" and seen[0].json() == body


async def test_untrusted_certificate(serve: Serve, pki: Pki) -> None:
    leaf = pki.leaf(self_signed=True)
    port = await serve_status(serve, leaf, 401, [])
    check(await probe(target(port, pki)), Reason.CERT_UNTRUSTED, http_status=None, details=None)


async def test_refused_connection(pki: Pki) -> None:
    check(await probe(target(closed_port(), pki)), Reason.REFUSED)


async def test_timeout(serve: Serve, pki: Pki, good_leaf: Leaf) -> None:
    port = await serve(recording(lambda r: None, []), good_leaf.server_context())
    check(await probe(target(port, pki), seconds=0.5), Reason.TIMEOUT)


async def test_needs_credentials(pki: Pki) -> None:
    with pytest.raises(ValueError, match="needs a check with credentials"):
        await probe(target(1, pki, auth=None))
