"""The status prober against local TLS servers, one per case."""

from __future__ import annotations

import asyncio
import json

import pytest

from monitor.probes import ProbeSession, ProbeTarget, Reason, probe_status

from .conftest import Serve
from .helpers import check, closed_port, deadline, read_request, reset, response
from .pki import Leaf, Pki

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(20)]

KEY = "Hc-Key-4-Tests!"


def target(port: int, pki: Pki, api_key: str | None = None) -> ProbeTarget:
    return ProbeTarget(
        id="test/orders/a1", host="127.0.0.1", port=port, api_key=api_key, ca_bundle=pki.ca_file
    )


def answering(*answers: bytes, seen: list[dict[str, str]] | None = None):
    """A handler that answers requests on one connection with ``answers`` in turn."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for answer in answers:
            request = await read_request(reader)
            if not request[":line"]:
                return
            if seen is not None:
                seen.append(request)
            writer.write(answer)
            await writer.drain()
        await reader.read()  # hold the connection open until the client leaves

    return handler


async def probe_once(port: int, pki: Pki, api_key: str | None = None, seconds: float = 3.0):
    session = ProbeSession()
    try:
        return await probe_status(target(port, pki, api_key), session, deadline(seconds))
    finally:
        session.close()


async def test_running_agent_with_json_body(serve: Serve, pki: Pki, good_leaf: Leaf) -> None:
    body = json.dumps({"ExecutingProcesses": 3, "memory_usage_mb": 2, "Version": "6.1"}).encode()
    seen: list[dict[str, str]] = []
    port = await serve(answering(response(200, body), seen=seen), good_leaf.server_context())
    result = await probe_once(port, pki, KEY)
    check(
        result,
        Reason.OK,
        ok=True,
        http_status=200,
        connection_reused=False,
        body_is_json=True,
        executing_processes=3,
        memory_bytes=2 * 1024 * 1024,
    )
    assert seen[0][":line"] == "GET /frendsstatusinfo HTTP/1.1"
    assert seen[0]["health-check-api-key"] == KEY
    assert seen[0]["host"] == f"127.0.0.1:{port}"
    assert KEY not in repr(target(port, pki, KEY)) and KEY not in repr(result)


async def test_non_json_body_is_fine(serve: Serve, pki: Pki, good_leaf: Leaf) -> None:
    port = await serve(answering(response(200, b"Agent is running")), good_leaf.server_context())
    check(
        await probe_once(port, pki),
        Reason.OK,
        body_is_json=False,
        body_bytes=16,
        executing_processes=None,
        memory_bytes=None,
    )


async def test_paused_agent(serve: Serve, pki: Pki, good_leaf: Leaf) -> None:
    port = await serve(answering(response(503)), good_leaf.server_context())
    check(await probe_once(port, pki), Reason.PAUSED, ok=False, http_status=503, details=None)


@pytest.mark.parametrize("sent", [None, "Wrong-Key-123!"])
async def test_rejected_or_missing_key(serve: Serve, pki: Pki, good_leaf: Leaf, sent) -> None:
    seen: list[dict[str, str]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader)
        seen.append(request)
        ok = request.get("health-check-api-key") == KEY
        writer.write(response(200 if ok else 401))
        await writer.drain()

    port = await serve(handler, good_leaf.server_context())
    check(await probe_once(port, pki, sent), Reason.UNAUTHORIZED, http_status=401)
    assert seen[0].get("health-check-api-key") == sent


async def test_other_status(serve: Serve, pki: Pki, good_leaf: Leaf) -> None:
    port = await serve(answering(response(500, b"oops")), good_leaf.server_context())
    check(await probe_once(port, pki), Reason.HTTP_STATUS, http_status=500)


async def test_refused(pki: Pki) -> None:
    check(await probe_once(closed_port(), pki), Reason.REFUSED, http_status=None)


async def test_reset_after_request(serve: Serve, pki: Pki, good_leaf: Leaf) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        reset(writer)

    port = await serve(handler, good_leaf.server_context())
    check(await probe_once(port, pki), Reason.RESET)


async def test_timeout_when_no_answer(serve: Serve, pki: Pki, good_leaf: Leaf) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    port = await serve(handler, good_leaf.server_context())
    result = await probe_once(port, pki, seconds=0.5)
    check(result, Reason.TIMEOUT)
    assert 0.4 < result.duration < 2


async def test_keep_alive_reuses_one_connection(serve: Serve, pki: Pki, good_leaf: Leaf) -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await answering(response(200, b"{}"), response(200, b"{}"))(reader, writer)

    port = await serve(handler, good_leaf.server_context())
    session = ProbeSession()
    try:
        first = await probe_status(target(port, pki), session, deadline())
        second = await probe_status(target(port, pki), session, deadline())
    finally:
        session.close()
    check(first, Reason.OK, connection_reused=False)
    check(second, Reason.OK, connection_reused=True)
    assert connections == 1


async def test_dropped_connection_is_replaced_within_the_probe(
    serve: Serve, pki: Pki, good_leaf: Leaf
) -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await read_request(reader)
        writer.write(response(200, b"{}"))  # keep-alive promised, then the agent goes away
        await writer.drain()

    port = await serve(handler, good_leaf.server_context())
    session = ProbeSession()
    try:
        check(await probe_status(target(port, pki), session, deadline()), Reason.OK)
        await asyncio.sleep(0.1)  # the close reaches us while idle
        dropped = await probe_status(target(port, pki), session, deadline())
    finally:
        session.close()
    check(dropped, Reason.OK, connection_reused=False)
    assert dropped.context["dropped"] is True
    assert connections == 2


async def test_connection_close_header_means_fresh_connection(
    serve: Serve, pki: Pki, good_leaf: Leaf
) -> None:
    port = await serve(
        answering(response(200, b"{}", "Connection: close")), good_leaf.server_context()
    )
    session = ProbeSession()
    try:
        check(await probe_status(target(port, pki), session, deadline()), Reason.OK)
        assert session.status_connection is None
    finally:
        session.close()


async def test_chunked_body(serve: Serve, pki: Pki, good_leaf: Leaf) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'7;ext=1\r\n{"Execu\r\n12\r\ntingProcesses": 5}\r\n0\r\nX-Trailer: 1\r\n\r\n'
    )
    port = await serve(answering(chunked, chunked), good_leaf.server_context())
    session = ProbeSession()
    try:
        first = await probe_status(target(port, pki), session, deadline())
        second = await probe_status(target(port, pki), session, deadline())
    finally:
        session.close()
    check(first, Reason.OK, executing_processes=5, body_bytes=25)
    check(second, Reason.OK, connection_reused=True, executing_processes=5)


async def test_untrusted_certificate(serve: Serve, pki: Pki) -> None:
    rogue = pki.leaf(self_signed=True)
    port = await serve(answering(response(200)), rogue.server_context())
    result = await probe_once(port, pki)
    check(result, Reason.CERT_UNTRUSTED)
    assert result.context["verify_code"] == 18  # self-signed certificate


async def test_wrong_host_name(serve: Serve, pki: Pki) -> None:
    other = pki.leaf(("other.example",))
    port = await serve(answering(response(200)), other.server_context())
    check(await probe_once(port, pki), Reason.CERT_HOSTNAME)


async def test_plain_http_target(serve: Serve, pki: Pki) -> None:
    port = await serve(answering(response(200, b"{}")))
    plain = ProbeTarget(id="dev/g/a", host="127.0.0.1", port=port, scheme="http")
    session = ProbeSession()
    try:
        check(await probe_status(plain, session, deadline()), Reason.OK, http_status=200)
    finally:
        session.close()


async def test_cut_off_by_caller_leaves_no_half_used_connection(
    serve: Serve, pki: Pki, good_leaf: Leaf
) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    port = await serve(silent, good_leaf.server_context())
    session = ProbeSession()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):  # the scheduler's hard deadline, before the probe's
            await probe_status(target(port, pki), session, deadline(5))
    assert session.status_connection is None
