"""OAuth2 on the entrypoint prober: the token's life in the session, token endpoint failures."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from monitor.probes import (
    ApiCheckTarget,
    OAuth2Credentials,
    ProbeSession,
    Reason,
    TokenUse,
    probe_entrypoint,
)
from monitor.probes.oauth import DEFAULT_LIFETIME, TokenError, parse_token_response

from .apiserver import Request, TokenIssuer, assert_hidden, json_response, recording
from .conftest import Serve
from .helpers import check, closed_port, deadline, response
from .pki import Leaf, Pki

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(20)]

CANARY = "Canary-Client-Secret-9q!Z"


def credentials(token_port: int, pki: Pki, secret: str = CANARY) -> OAuth2Credentials:
    return OAuth2Credentials(
        token_url=f"https://127.0.0.1:{token_port}/oauth2/token?tenant=t1",
        client_id="agentha-monitor",
        client_secret=secret,
        scope="orders.read orders.write",
        ca_bundle=pki.ca_file,
    )


def target(api_port: int, token_port: int, pki: Pki, **overrides: Any) -> ApiCheckTarget:
    settings: dict[str, Any] = {
        "group": "test/orders",
        "check": "list-orders",
        "host": "127.0.0.1",
        "port": api_port,
        "path": "/api/orders",
        "ca_bundle": pki.ca_file,
        "auth": credentials(token_port, pki),
    }
    return ApiCheckTarget(**(settings | overrides))


async def servers(serve: Serve, leaf: Leaf, issuer: TokenIssuer, api_seen: list[Request]):
    """A token endpoint and an API that accepts the issuer's valid tokens."""
    token_port = await serve(recording(issuer.answer, issuer.seen), leaf.server_context())
    api_port = await serve(recording(issuer.api, api_seen), leaf.server_context())
    return api_port, token_port


async def test_token_fetched_once_and_reused(
    serve: Serve, pki: Pki, good_leaf: Leaf, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    issuer, api_seen = TokenIssuer(), []
    api_port, token_port = await servers(serve, good_leaf, issuer, api_seen)
    check_target = target(api_port, token_port, pki)
    session = ProbeSession()
    results = [await probe_entrypoint(check_target, session, deadline()) for _ in range(3)]
    check(results[0], Reason.OK, token=TokenUse.FETCHED)
    assert results[0].details.token_latency > 0
    for result in results[1:]:
        check(result, Reason.OK, http_status=200, token=TokenUse.REUSED, token_latency=None)
    (token_request,) = issuer.seen
    assert token_request.line == "POST /oauth2/token?tenant=t1 HTTP/1.1"
    assert token_request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert token_request.form() == {
        "grant_type": "client_credentials",
        "client_id": "agentha-monitor",
        "client_secret": CANARY,
        "scope": "orders.read orders.write",
    }
    assert [r.headers["authorization"] for r in api_seen] == ["Bearer tok-1"] * 3
    for result in results:
        for secret in (CANARY, "tok-1"):
            assert_hidden(secret, result, check_target, session)
    assert CANARY not in caplog.text and "tok-1" not in caplog.text
    session.close()
    assert session.oauth_token is None


async def test_token_refreshed_before_expiry(serve: Serve, pki: Pki, good_leaf: Leaf) -> None:
    issuer, api_seen = TokenIssuer(expires_in="1"), []  # a string, as some providers send
    api_port, token_port = await servers(serve, good_leaf, issuer, api_seen)
    check_target, session = target(api_port, token_port, pki), ProbeSession()
    check(await probe_entrypoint(check_target, session, deadline()), Reason.OK, token="fetched")
    check(await probe_entrypoint(check_target, session, deadline()), Reason.OK, token="reused")
    await asyncio.sleep(1.0)  # past the refresh point (a tenth of the life before expiry)
    check(await probe_entrypoint(check_target, session, deadline()), Reason.OK, token="fetched")
    assert [r.headers["authorization"] for r in api_seen] == [
        "Bearer tok-1",
        "Bearer tok-1",
        "Bearer tok-2",
    ]
    session.close()


async def test_token_refreshed_after_401(serve: Serve, pki: Pki, good_leaf: Leaf) -> None:
    issuer, api_seen = TokenIssuer(), []
    api_port, token_port = await servers(serve, good_leaf, issuer, api_seen)
    check_target, session = target(api_port, token_port, pki), ProbeSession()
    check(await probe_entrypoint(check_target, session, deadline()), Reason.OK, token="fetched")
    issuer.valid.clear()  # the API revokes tok-1
    result = await probe_entrypoint(check_target, session, deadline())
    check(result, Reason.OK, http_status=200, token=TokenUse.REFRESHED)
    assert result.details.token_latency > 0
    check(await probe_entrypoint(check_target, session, deadline()), Reason.OK, token="reused")
    assert [r.headers["authorization"] for r in api_seen] == [
        "Bearer tok-1",
        "Bearer tok-1",  # 401
        "Bearer tok-2",
        "Bearer tok-2",
    ]
    session.close()


async def test_fresh_token_rejected_is_not_retried(serve: Serve, pki: Pki, good_leaf: Leaf) -> None:
    issuer, api_seen = TokenIssuer(), []
    token_port = await serve(recording(issuer.answer, issuer.seen), good_leaf.server_context())
    api_port = await serve(recording(lambda r: response(401), api_seen), good_leaf.server_context())
    session = ProbeSession()
    result = await probe_entrypoint(target(api_port, token_port, pki), session, deadline())
    check(result, Reason.UNEXPECTED_STATUS, http_status=401, token=TokenUse.FETCHED)
    assert len(issuer.seen) == 1 and len(api_seen) == 1
    assert session.oauth_token is None  # a rejected token is not sent again
    session.close()


async def test_token_for_other_credentials_is_not_reused(
    serve: Serve, pki: Pki, good_leaf: Leaf
) -> None:
    issuer, api_seen = TokenIssuer(), []
    api_port, token_port = await servers(serve, good_leaf, issuer, api_seen)
    session = ProbeSession()
    first = target(api_port, token_port, pki)
    rotated = target(api_port, token_port, pki, auth=credentials(token_port, pki, "Rotated-9q!Z"))
    check(await probe_entrypoint(first, session, deadline()), Reason.OK, token="fetched")
    check(await probe_entrypoint(rotated, session, deadline()), Reason.OK, token="fetched")
    assert issuer.seen[1].form()["client_secret"] == "Rotated-9q!Z"
    session.close()


def _timeout(request: Request) -> None:
    return None


TOKEN_FAILURES = {
    "rejected": (
        lambda r: json_response(401, {"error": "invalid_client", "error_description": CANARY}),
        Reason.TOKEN_REJECTED,
        {"token_status": 401, "oauth_error": "invalid_client"},
    ),
    "odd error": (
        lambda r: json_response(400, {"error": "Contact admin@example.com"}),
        Reason.TOKEN_REJECTED,
        {"token_status": 400, "oauth_error": None},
    ),
    "server error": (
        lambda r: response(500, b"boom"),
        Reason.TOKEN_FAILED,
        {"cause": "http_status", "token_status": 500},
    ),
    "garbage": (
        lambda r: response(200, b"<html>login</html>"),
        Reason.TOKEN_FAILED,
        {"cause": "not_json", "token_status": 200},
    ),
    "no token": (
        lambda r: json_response(200, {"token_type": "Bearer"}),
        Reason.TOKEN_FAILED,
        {"cause": "no_access_token", "token_status": 200},
    ),
    "bad token": (
        lambda r: json_response(200, {"access_token": "a b\r\nX-Evil: 1"}),
        Reason.TOKEN_FAILED,
        {"cause": "bad_access_token", "token_status": 200},
    ),
    "timeout": (_timeout, Reason.TOKEN_FAILED, {"cause": "timeout"}),
}


@pytest.mark.parametrize("case", TOKEN_FAILURES)
async def test_token_endpoint_failures(serve: Serve, pki: Pki, good_leaf: Leaf, case: str) -> None:
    answer, reason, expected = TOKEN_FAILURES[case]
    token_seen: list[Request] = []
    api_seen: list[Request] = []
    token_port = await serve(recording(answer, token_seen), good_leaf.server_context())
    api_port = await serve(recording(lambda r: response(200), api_seen), good_leaf.server_context())
    session = ProbeSession()
    result = await probe_entrypoint(target(api_port, token_port, pki), session, deadline(0.5))
    check(result, reason, http_status=None, details=None)
    assert {k: result.context[k] for k in expected} == expected
    assert result.context["token_latency"] >= 0
    assert len(token_seen) == 1 and api_seen == []
    assert session.oauth_token is None
    assert_hidden(CANARY, result, session)


async def test_token_endpoint_untrusted_or_refused(serve: Serve, pki: Pki) -> None:
    leaf = pki.leaf(self_signed=True)
    token_port = await serve(recording(TokenIssuer().answer, []), leaf.server_context())
    result = await probe_entrypoint(target(1, token_port, pki), ProbeSession(), deadline())
    check(result, Reason.TOKEN_FAILED)
    assert result.context["cause"] == "cert_untrusted" and "verify_code" in result.context
    result = await probe_entrypoint(target(1, closed_port(), pki), ProbeSession(), deadline())
    check(result, Reason.TOKEN_FAILED)
    assert result.context["cause"] == "refused"


async def test_token_response_parsing(pki: Pki) -> None:
    creds = credentials(1, pki)

    def parse(document: bytes, status: int = 200):
        return parse_token_response(status, document, creds, issued=1000.0)

    assert parse(b'{"access_token": "abc", "expires_in": 600}').refresh_at == 1000 + 600 - 30
    assert parse(b'{"access_token": "abc", "expires_in": 20}').refresh_at == 1000 + 20 - 2
    assert parse(b'{"access_token": "abc", "token_type": "bearer"}').refresh_at == pytest.approx(
        1000 + DEFAULT_LIFETIME * 0.9
    )
    assert parse(b'{"access_token": "abc", "expires_in": true}').refresh_at == pytest.approx(
        1000 + DEFAULT_LIFETIME * 0.9
    )
    assert parse(b'{"access_token": "abc", "expires_in": -5}').refresh_at == 1000
    token = parse(b'{"access_token": "eyJ.abc-_~+/==", "expires_in": 60}')
    assert token.usable(creds, 1000.0) and not token.usable(creds, 1054.0)
    assert "eyJ" not in repr(token) and CANARY not in repr(token)
    for bad, cause in [
        (b'{"access_token": "abc", "token_type": "mac"}', "token_type"),
        (b'{"access_token": 7}', "no_access_token"),
        (b"[1, 2]", "not_json"),
        (b"[" * 100000, "not_json"),
    ]:
        with pytest.raises(TokenError) as info:
            parse(bad)
        assert info.value.context["cause"] == cause
