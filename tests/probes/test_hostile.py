"""Hostile and broken servers: every case is classified, bounded in time and memory."""

from __future__ import annotations

import asyncio
import tracemalloc

import pytest

from monitor.probes import ProbeSession, ProbeTarget, Reason, probe_status

from .conftest import Serve
from .helpers import check, deadline, read_request, reset
from .pki import Leaf, Pki

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(20)]

HUNDRED_MB = 100 * 1024 * 1024
BLOCK = b"x" * 65536


async def probe(port: int, pki: Pki, seconds: float = 3.0):
    session = ProbeSession()
    target = ProbeTarget(id="test/g/a", host="127.0.0.1", port=port, ca_bundle=pki.ca_file)
    try:
        return await probe_status(target, session, deadline(seconds))
    finally:
        assert session.status_connection is None or session.status_connection.reusable
        session.close()


def replying(
    head: bytes, body_block: bytes = b"", total: int = 0, delay: float = 0.0, hold: bool = True
):
    """Answer ``head``, stream ``total`` bytes of ``body_block`` repeats, then hold or close."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(head)
        sent = 0
        while sent < total:
            writer.write(body_block)
            await writer.drain()
            sent += len(body_block)
            if delay:
                await asyncio.sleep(delay)
        await writer.drain()
        if hold:
            await reader.read()
        else:
            writer.close()
            await writer.wait_closed()

    return handler


def hex_chunk(block: bytes) -> bytes:
    return f"{len(block):x}\r\n".encode() + block + b"\r\n"


@pytest.mark.parametrize(
    ("head", "block"),
    [
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", BLOCK),  # until close
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", hex_chunk(BLOCK)),
        (f"HTTP/1.1 200 OK\r\nContent-Length: {HUNDRED_MB}\r\n\r\n".encode(), BLOCK),
    ],
    ids=["until-close", "chunked", "content-length"],
)
async def test_hundred_megabyte_body(
    serve: Serve, pki: Pki, good_leaf: Leaf, head: bytes, block: bytes
) -> None:
    port = await serve(replying(head, block, HUNDRED_MB), good_leaf.server_context())
    tracemalloc.start()
    try:
        result = await probe(port, pki)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    check(result, Reason.BODY_TOO_LARGE, http_status=None)
    assert peak < 4 * 1024 * 1024, peak  # the limit is 256 KiB; buffers add a little


async def test_one_byte_per_second_is_cut_off(serve: Serve, pki: Pki, good_leaf: Leaf) -> None:
    drip = replying(b"", b"H", total=1000, delay=1.0)
    port = await serve(drip, good_leaf.server_context())
    result = await probe(port, pki, seconds=1.5)
    check(result, Reason.TIMEOUT)
    assert result.duration < 2.5


@pytest.mark.parametrize(
    ("head", "block", "detail"),
    [
        (b"HTTP/1.1 200 OK\r\n", b"X-Endless: header\r\n", "response head too large"),
        (b"HTTP/1.1 200 OK\r\n" + b"X-Many: 1\r\n" * 150 + b"\r\n", b"", "too many headers"),
        (b"\x00\xff\x16garbage that is not http\r\n\r\n", b"", "invalid status line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 12x\r\n\r\n", b"", "invalid Content-Length"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\nshort",
            b"",
            "truncated body",
        ),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", b"", "invalid chunk size"),
    ],
    ids=["endless-headers", "many-headers", "garbage", "bad-length", "truncated", "bad-chunk"],
)
async def test_malformed_responses(
    serve: Serve, pki: Pki, good_leaf: Leaf, head: bytes, block: bytes, detail: str
) -> None:
    handler = replying(head, block, total=10 * 1024 * 1024 if block else 0, hold=False)
    port = await serve(handler, good_leaf.server_context())
    result = await probe(port, pki)
    check(result, Reason.BAD_RESPONSE)
    assert result.context["detail"] == detail


async def test_closed_without_answer(serve: Serve, pki: Pki, good_leaf: Leaf) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    port = await serve(handler, good_leaf.server_context())
    check(await probe(port, pki), Reason.NO_RESPONSE)


async def test_reset_during_tls_handshake(serve: Serve, pki: Pki) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(10)  # part of the ClientHello
        reset(writer)

    port = await serve(handler)  # plain TCP: the handshake never completes
    check(await probe(port, pki), Reason.RESET)


async def test_close_during_tls_handshake(serve: Serve, pki: Pki) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(10)
        writer.close()

    port = await serve(handler)
    # asyncio reports a peer that closes mid-handshake as a lost connection, like a reset.
    check(await probe(port, pki), Reason.RESET)
