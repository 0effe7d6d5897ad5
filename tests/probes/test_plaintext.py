"""TLS-only enforcement: the TLS port must not speak plain HTTP; plain-HTTP ports must be
closed or redirect to https."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio

from monitor.probes import (
    PortFinding,
    PortVerdict,
    ProbeSession,
    ProbeTarget,
    Reason,
    probe_plaintext,
)

from .conftest import Handler, Serve
from .helpers import check, closed_port, deadline, read_request, response
from .pki import Leaf

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(20)]

TLS_RECORD_HANDSHAKE = b"\x16"


def answering(answer: bytes) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer)
        await writer.drain()

    return handler


@pytest_asyncio.fixture
async def sniffing_server() -> AsyncIterator[Callable[[ssl.SSLContext, Handler], Awaitable[int]]]:
    """A port that speaks TLS or plain HTTP, chosen by peeking at the first byte."""
    loop = asyncio.get_running_loop()
    listeners: list[socket.socket] = []
    tasks: set[asyncio.Task[None]] = set()

    async def connection(sock: socket.socket, context: ssl.SSLContext, handler: Handler) -> None:
        while True:
            try:
                first = sock.recv(1, socket.MSG_PEEK)
                break
            except BlockingIOError:
                await asyncio.sleep(0.005)
        reader = asyncio.StreamReader()
        protocol = asyncio.StreamReaderProtocol(reader)
        tls = context if first == TLS_RECORD_HANDSHAKE else None
        transport, _ = await loop.connect_accepted_socket(lambda: protocol, sock, ssl=tls)
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        try:
            await handler(reader, writer)
        finally:
            transport.abort()

    async def accept(listener: socket.socket, context: ssl.SSLContext, handler: Handler) -> None:
        while True:
            sock, _ = await loop.sock_accept(listener)
            sock.setblocking(False)
            tasks.add(asyncio.create_task(connection(sock, context, handler)))

    async def start(context: ssl.SSLContext, handler: Handler) -> int:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        listeners.append(listener)
        tasks.add(asyncio.create_task(accept(listener, context, handler)))
        return listener.getsockname()[1]

    yield start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for listener in listeners:
        listener.close()


async def audit(port: int, *http_ports: int, scheme: str = "https"):
    target = ProbeTarget(
        id="prod/g/a", host="127.0.0.1", port=port, scheme=scheme, plain_http_ports=http_ports
    )
    return await probe_plaintext(target, ProbeSession(), deadline(2))


async def test_tls_only_port_is_fine(serve: Serve, good_leaf: Leaf) -> None:
    port = await serve(answering(response(200, b"{}")), good_leaf.server_context())
    result = await audit(port)
    check(result, Reason.OK, tls_port=PortFinding(port, PortVerdict.SILENT), http_ports=())


async def test_tls_port_answering_plain_http(sniffing_server, good_leaf: Leaf) -> None:
    port = await sniffing_server(good_leaf.server_context(), answering(response(200, b"{}")))
    result = await audit(port)
    check(
        result,
        Reason.PLAINTEXT_SERVED,
        http_status=200,
        tls_port=PortFinding(port, PortVerdict.SERVES_HTTP, 200),
    )
    assert result.context == {"port": port}


async def test_sniffing_server_still_speaks_tls(sniffing_server, good_leaf: Leaf) -> None:
    """The fixture itself: a TLS client gets TLS on the same port."""
    port = await sniffing_server(good_leaf.server_context(), answering(response(200, b"{}")))
    client = ssl.create_default_context(cafile=None)
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await reader.readline()).startswith(b"HTTP/1.1 200")
    writer.transport.abort()


async def test_plain_ports(serve: Serve, good_leaf: Leaf) -> None:
    tls = await serve(answering(b""), good_leaf.server_context())
    closed = closed_port()
    redirect = await serve(answering(response(301, b"", "Location: https://agent.example/")))
    result = await audit(tls, closed, redirect)
    check(
        result,
        Reason.OK,
        http_ports=(
            PortFinding(closed, PortVerdict.CLOSED),
            PortFinding(redirect, PortVerdict.REDIRECTS_HTTPS, 301, "https://agent.example/"),
        ),
    )


@pytest.mark.parametrize(
    ("answer", "status", "location"),
    [
        (response(200, b"<html>hello</html>"), 200, None),
        (response(302, b"", "Location: http://agent.example/"), 302, "http://agent.example/"),
        (response(301), 301, None),
    ],
    ids=["content", "redirect-to-http", "redirect-without-location"],
)
async def test_plain_port_serving(
    serve: Serve, good_leaf: Leaf, answer: bytes, status: int, location: str | None
) -> None:
    tls = await serve(answering(b""), good_leaf.server_context())
    redirect = await serve(answering(response(301, b"", "Location: https://agent.example/")))
    open_port = await serve(answering(answer))
    result = await audit(tls, redirect, open_port)
    check(result, Reason.HTTP_PORT_OPEN, http_status=status)
    assert result.details.http_ports[1] == PortFinding(
        open_port, PortVerdict.SERVES_HTTP, status, location
    )
    assert result.context == {"port": open_port, "ports_open": 1}


async def test_silent_plain_port_times_out_within_deadline(serve: Serve, good_leaf: Leaf) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    tls = await serve(answering(b""), good_leaf.server_context())
    quiet = await serve(silent)
    result = await audit(tls, quiet)
    check(result, Reason.OK, http_ports=(PortFinding(quiet, PortVerdict.SILENT),))
    assert result.duration < 3


async def test_not_https(serve: Serve) -> None:
    check(await audit(closed_port(), scheme="http"), Reason.NOT_HTTPS, details=None)
