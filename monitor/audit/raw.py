"""Raw HTTP/1.1 requests over TLS: the faulty ones no HTTP client library will send.

A request is bytes written as they are; the answer's status line and head are read within
``MAX_ANSWER_HEAD`` bytes and the deadline, and the body is never read. Every connection is
fresh and aborted after the answer's head, so a server that keeps reading a faulty request
cannot hold the audit up.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

from monitor.audit.limits import MAX_ANSWER_HEAD
from monitor.audit.result import Outcome

_STATUS = re.compile(rb"HTTP/1\.[01] ([1-5][0-9]{2})(?: |\r|$)")

Header = tuple[str, str | bytes]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where requests go: the group's entrypoint as the audit reaches it."""

    host: str
    port: int
    ssl_context: ssl.SSLContext | None  # None: plain HTTP (a lab entrypoint)
    server_name: str  # SNI and certificate name
    host_header: str  # the Host header of a correct request


@dataclass(frozen=True, slots=True)
class Answer:
    outcome: Outcome
    status: int | None = None
    closes: bool = False  # the answer says "Connection: close"


def request_head(
    method: str,
    path: str,
    host: str | bytes | None,
    headers: Sequence[Header],
    keep_alive: bool = False,
) -> bytes:
    """A request head as bytes; ``host`` None leaves the Host header out."""
    lines = [f"{method} {path} HTTP/1.1".encode("latin-1")]
    if host is not None:
        lines.append(b"Host: " + (host if isinstance(host, bytes) else host.encode("latin-1")))
    for name, value in headers:
        raw = value if isinstance(value, bytes) else value.encode("latin-1")
        lines.append(name.encode("latin-1") + b": " + raw)
    if not keep_alive:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def open_connection(
    endpoint: Endpoint, source: str | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A fresh connection (TLS when the endpoint has a context), bound to ``source``."""
    return await asyncio.open_connection(
        endpoint.host,
        endpoint.port,
        ssl=endpoint.ssl_context,
        server_hostname=endpoint.server_name if endpoint.ssl_context else None,
        local_addr=(source, 0) if source else None,
        limit=MAX_ANSWER_HEAD,
    )


async def send(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> Answer:
    """Write ``request`` and read the answer's head; the connection is aborted afterwards.

    The write runs beside the read: a server may answer (413, 400) and close before it has
    read a large request, and that answer is what counts.
    """

    async def write() -> None:
        writer.write(request)
        await writer.drain()

    writing = asyncio.ensure_future(write())
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        return _partial(exc.partial)
    except asyncio.LimitOverrunError:
        first = await _first_line(reader)
        return _partial(first) if first else Answer(Outcome.BAD_ANSWER)
    except ConnectionResetError:
        return Answer(Outcome.RESET)
    except (ssl.SSLError, OSError):
        return Answer(Outcome.CLOSED)
    finally:
        writing.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError, ssl.SSLError):
            await writing
        writer.transport.abort()
    return _parse(head)


async def _first_line(reader: asyncio.StreamReader) -> bytes:
    with contextlib.suppress(Exception):
        return await reader.read(64)
    return b""


def _partial(data: bytes) -> Answer:
    if not data:
        return Answer(Outcome.CLOSED)
    return _parse(data)


def _parse(head: bytes) -> Answer:
    match = _STATUS.match(head)
    if match is None:
        return Answer(Outcome.BAD_ANSWER)
    closes = any(
        name.strip().lower() == b"connection" and b"close" in value.lower()
        for name, _, value in (line.partition(b":") for line in head.split(b"\r\n")[1:])
    )
    return Answer(Outcome.ANSWERED, int(match[1]), closes)


def connect_failure(exc: BaseException) -> Outcome:
    """The outcome of a connection that could not be made."""
    match exc:
        case TimeoutError():
            return Outcome.TIMEOUT
        case ConnectionRefusedError():
            return Outcome.REFUSED
        case ssl.SSLError():
            return Outcome.TLS_FAILED
        case ConnectionResetError() | ConnectionAbortedError() | BrokenPipeError():
            return Outcome.RESET
        case _:
            return Outcome.CLOSED


async def exchange(
    endpoint: Endpoint,
    request: bytes,
    per_request_s: float,
    source: str | None = None,
) -> Answer:
    """One request on a fresh connection within ``per_request_s`` seconds; never raises for the
    server's fault. A source address that cannot be used is ``NOT_SENT``."""
    try:
        async with asyncio.timeout(per_request_s):
            try:
                reader, writer = await open_connection(endpoint, source)
            except OSError as exc:
                if source is not None and exc.errno in _BIND_ERRORS:
                    return Answer(Outcome.NOT_SENT)
                return Answer(connect_failure(exc))
            return await send(reader, writer, request)
    except TimeoutError:
        return Answer(Outcome.TIMEOUT)


_BIND_ERRORS = frozenset({errno.EADDRNOTAVAIL, errno.EADDRINUSE})  # the source is not ours
