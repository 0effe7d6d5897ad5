"""Small helpers shared by the probe tests: local servers' building blocks and a result check."""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

from monitor.probes import ProbeResult, Reason


def deadline(seconds: float = 3.0) -> float:
    """An event-loop deadline ``seconds`` from now, as probers take it."""
    return asyncio.get_running_loop().time() + seconds


def closed_port() -> int:
    """A loopback port with nothing listening (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def read_request(reader: asyncio.StreamReader) -> dict[str, str]:
    """Read one request head; returns lower-cased headers plus ``:line`` (empty at EOF)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return {":line": ""}
    line, *fields = head.decode("latin-1").split("\r\n")[:-2]
    headers = {":line": line}
    for field in fields:
        name, _, value = field.partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers


def response(status: int, body: bytes = b"", *headers: str) -> bytes:
    head = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0) instead of a FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def check(result: ProbeResult, reason: Reason, **expected: Any) -> None:
    """Compare the reason and each expected value, read from the result or its details."""
    assert isinstance(result, ProbeResult)
    assert result.reason is reason, (result.reason, result.context)
    assert result.duration >= 0
    for key, want in expected.items():
        source = result if hasattr(result, key) else result.details
        got = getattr(source, key)
        assert got == want, f"{key}: got {got!r}, want {want!r}"
