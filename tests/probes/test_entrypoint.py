"""The entrypoint prober against local TLS servers: API key, body, status, TLS and network."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from monitor.probes import (
    ApiCheckTarget,
    ApiKeyCredentials,
    ProbeSession,
    Reason,
    probe_entrypoint,
)

from .apiserver import Request, assert_hidden, json_response, recording
from .conftest import Serve
from .helpers import check, closed_port, deadline, response
from .pki import Leaf, Pki

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(20)]

CANARY = "Canary-Api-Key-7f3a!"


def target(port: int, pki: Pki, **overrides: Any) -> ApiCheckTarget:
    settings: dict[str, Any] = {
        "group": "test/orders",
        "check": "list-orders",
        "host": "127.0.0.1",
        "port": port,
        "path": "/api/orders?limit=1",
        "ca_bundle": pki.ca_file,
        "auth": ApiKeyCredentials("X-Api-Key", CANARY),
    }
    return ApiCheckTarget(**(settings | overrides))


async def probe(check_target: ApiCheckTarget, seconds: float = 3.0):
    session = ProbeSession()
    try:
        return await probe_entrypoint(check_target, session, deadline(seconds))
    finally:
        session.close()


def answer(status: int, body: bytes = b""):
    return lambda request: response(status, body)


async def test_api_key_sent_and_ok(serve: Serve, pki: Pki, good_leaf: Leaf, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[Request] = []
    port = await serve(recording(answer(200, b'{"orders": []}'), seen), good_leaf.server_context())
    check_target = target(port, pki)
    result = await probe(check_target)
    check(result, Reason.OK, ok=True, http_status=200, status=200, body_bytes=14, token=None)
    assert result.probe == "entrypoint" and result.target == "test/orders:list-orders"
    assert result.details.latency > 0 and result.details.token_latency is None
    (request,) = seen
    assert request.line == "GET /api/orders?limit=1 HTTP/1.1"
    assert request.headers["x-api-key"] == CANARY
    assert request.headers["host"] == f"127.0.0.1:{port}"
    assert "authorization" not in request.headers and "content-length" not in request.headers
    assert_hidden(CANARY, result, check_target, check_target.auth)
    assert CANARY not in caplog.text


@pytest.mark.parametrize(("status", "expect"), [(500, 200), (200, 204), (401, 200)])
async def test_unexpected_status(
    serve: Serve, pki: Pki, good_leaf: Leaf, status: int, expect: int
) -> None:
    port = await serve(recording(answer(status, b"no"), []), good_leaf.server_context())
    result = await probe(target(port, pki, expect_status=expect))
    check(result, Reason.UNEXPECTED_STATUS, ok=False, http_status=status, status=status)
    assert result.context == {"expected": expect}
    assert_hidden(CANARY, result)


async def test_post_with_json_body(serve: Serve, pki: Pki, good_leaf: Leaf) -> None:
    order = {"customer": "c-1", "lines": [{"sku": "ä-9", "qty": 2}], "rush": False}

    def create(request: Request) -> bytes:
        good = (
            request.headers.get("content-type") == "application/json"
            and int(request.headers["content-length"]) == len(request.body)
            and request.json() == order
        )
        return json_response(201, {"id": 7}) if good else response(400)

    seen: list[Request] = []
    port = await serve(recording(create, seen), good_leaf.server_context())
    check_target = target(
        port, pki, method="POST", path="/api/orders", body=order, expect_status=201
    )
    check(await probe(check_target), Reason.OK, http_status=201)
    assert seen[0].line == "POST /api/orders HTTP/1.1"
    assert "list-orders" in repr(check_target) and "customer" not in repr(check_target)


async def test_post_without_body_sends_zero_length(serve: Serve, pki: Pki, good_leaf: Leaf) -> None:
    seen: list[Request] = []
    port = await serve(recording(answer(202), seen), good_leaf.server_context())
    check(await probe(target(port, pki, method="POST", expect_status=202)), Reason.OK)
    assert seen[0].headers["content-length"] == "0"


async def test_plain_http_entrypoint_without_credentials(serve: Serve, pki: Pki) -> None:
    seen: list[Request] = []
    port = await serve(recording(answer(200), seen))
    check(await probe(target(port, pki, scheme="http", auth=None)), Reason.OK, http_status=200)
    assert "x-api-key" not in seen[0].headers


async def test_credentials_need_https(pki: Pki) -> None:
    with pytest.raises(ValueError, match="only over https"):
        target(8443, pki, scheme="http")
    with pytest.raises(ValueError) as info:
        ApiKeyCredentials("X-Api-Key", CANARY + "\r\n")
    assert CANARY not in str(info.value)


async def test_untrusted_certificate(serve: Serve, pki: Pki) -> None:
    leaf = pki.leaf(self_signed=True)
    seen: list[Request] = []
    port = await serve(recording(answer(200), seen), leaf.server_context())
    result = await probe(target(port, pki))
    check(result, Reason.CERT_UNTRUSTED, http_status=None, status=None, latency=None)
    assert seen == []  # the key never left the client
    assert_hidden(CANARY, result)


async def test_certificate_for_another_name(serve: Serve, pki: Pki, good_leaf: Leaf) -> None:
    port = await serve(recording(answer(200), []), good_leaf.server_context())
    result = await probe(target(port, pki, server_name="api.example"))
    check(result, Reason.CERT_HOSTNAME)


async def test_refused(pki: Pki) -> None:
    check(await probe(target(closed_port(), pki)), Reason.REFUSED, http_status=None)


async def test_timeout(serve: Serve, pki: Pki, good_leaf: Leaf) -> None:
    port = await serve(recording(lambda request: None, []), good_leaf.server_context())
    result = await probe(target(port, pki), seconds=0.5)
    check(result, Reason.TIMEOUT, http_status=None)
    assert result.duration < 2
