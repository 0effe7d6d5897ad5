"""A minimal, bounded HTTP/1.1 client on asyncio streams.

Cheaper per request than a general client, and every read is bounded: the response head by
``max_header_bytes`` and ``max_headers``, the body by ``max_body_bytes``. Time is bounded by the
caller (one ``asyncio.timeout`` around connect plus request), which also cuts off slow drips.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class HttpLimits:
    max_header_bytes: int = 64 * 1024
    max_headers: int = 100
    max_body_bytes: int = 256 * 1024


DEFAULT_LIMITS = HttpLimits()


class HttpError(Exception):
    """The server's answer could not be used; the connection must be closed."""


class NoResponse(HttpError):
    """The connection closed before the first byte of a response."""


class BadResponse(HttpError):
    """The bytes received are not a valid HTTP/1.x response, or it exceeds a head limit."""


class BodyTooLarge(HttpError):
    """The body is longer than ``max_body_bytes``."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: tuple[tuple[str, str], ...]  # names lower-cased, in order received
    body: bytes
    keep_alive: bool

    def header(self, name: str) -> str | None:
        """The first value of a header (name case-insensitive), or None."""
        name = name.lower()
        return next((v for k, v in self.headers if k == name), None)


_STATUS_LINE = re.compile(r"HTTP/1\.([01]) (\d{3})(?: [^\r\n]*)?")
_FIELD = re.compile(r"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):")  # a header's name and colon
_DECIMAL = re.compile(r"[0-9]{1,18}")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,15}")
_CRLF = b"\r\n"


class HttpConnection:
    """One connection for sequential requests (HTTP/1.1 keep-alive, no pipelining)."""

    __slots__ = ("_keep_alive", "_limits", "_protocol", "_reader", "_writer", "requests")

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        protocol: _Protocol,
        limits: HttpLimits,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._protocol = protocol
        self._limits = limits
        self._keep_alive = True
        self.requests = 0  # completed exchanges

    @property
    def reusable(self) -> bool:
        """False once the peer closed, a response said close, or an exchange failed."""
        return self._keep_alive and not self._writer.is_closing() and not self._reader.at_eof()

    def on_drop(self, callback: Callable[[], None] | None) -> None:
        """Call ``callback`` once when the peer closes or resets the connection.

        No task watches the connection: the transport tells its protocol, which calls back.
        A close we make ourselves (``close()``) does not call it.
        """
        self._protocol.on_drop = callback

    def close(self) -> None:
        # abort, not close: no TLS close_notify round trip to wait for on a probe connection.
        self._keep_alive = False
        self.on_drop(None)
        self._writer.transport.abort()

    async def request(
        self,
        method: str,
        path: str,
        host: str,
        headers: Sequence[tuple[str, str]] = (),
        *,
        body: bytes | None = None,
        head_only: bool = False,
    ) -> Response:
        """Send one request and read the response within the limits.

        ``body`` is sent with its ``Content-Length`` (the caller sets ``Content-Type``).
        ``head_only`` stops after the headers (empty body, connection not reusable).
        Raises ``HttpError`` subclasses for bad answers and ``OSError`` for transport faults;
        after any exception the connection is unusable.
        """
        self._keep_alive = False  # until this exchange completes cleanly
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in headers)]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        head = "\r\n".join(lines)
        # Only the separators we put in may be CR or LF (two counts, not a scan per line).
        if head.count("\r") != len(lines) - 1 or head.count("\n") != len(lines) - 1:
            raise ValueError("request line or header contains CR or LF")
        self._writer.write((head + "\r\n\r\n").encode("latin-1") + (body or b""))
        await self._writer.drain()
        status, http11, fields = await self._read_head()
        response_headers = tuple(fields)
        connection = {
            t.strip().lower() for k, v in fields if k == "connection" for t in v.split(",")
        }
        keep_alive = "keep-alive" in connection if not http11 else "close" not in connection
        if head_only:
            return Response(status, response_headers, b"", keep_alive=False)
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            body = b""
            keep_alive = keep_alive and status >= 200  # an interim answer leaves the stream odd
        else:
            body, until_close = await self._read_body(response_headers)
            keep_alive = keep_alive and not until_close
        self._keep_alive = keep_alive
        self.requests += 1
        return Response(status, response_headers, body, keep_alive)

    async def _read_head(self) -> tuple[int, bool, list[tuple[str, str]]]:
        try:
            head = await self._reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                raise NoResponse from None
            raise BadResponse("truncated response head") from None
        except asyncio.LimitOverrunError:
            raise BadResponse("response head too large") from None
        lines = head[:-4].decode("latin-1").split("\r\n")
        match = _STATUS_LINE.fullmatch(lines[0])
        if match is None:
            raise BadResponse("invalid status line")
        if len(lines) - 1 > self._limits.max_headers:
            raise BadResponse("too many headers")
        fields = []
        for line in lines[1:]:
            field = _FIELD.match(line)
            if field is None:
                raise BadResponse("invalid header line")
            fields.append((field[1].lower(), line[field.end() :].strip(" \t")))
        return int(match[2]), match[1] == "1", fields

    async def _read_body(self, headers: tuple[tuple[str, str], ...]) -> tuple[bytes, bool]:
        """The body and whether it was delimited by the connection closing."""
        codings = [v.strip().lower() for k, v in headers if k == "transfer-encoding"]
        if codings:
            if codings[-1].rsplit(",", 1)[-1].strip() == "chunked":
                return await self._read_chunked(), False
            return await self._read_until_close(), True
        lengths = {v.strip() for k, v in headers if k == "content-length"}
        if not lengths:
            return await self._read_until_close(), True
        if len(lengths) > 1 or not _DECIMAL.fullmatch(value := lengths.pop()):
            raise BadResponse("invalid Content-Length")
        length = int(value)
        if length > self._limits.max_body_bytes:
            raise BodyTooLarge
        return await self._read_exactly(length), False

    async def _read_exactly(self, n: int) -> bytes:
        try:
            return await self._reader.readexactly(n)
        except asyncio.IncompleteReadError:
            raise BadResponse("truncated body") from None

    async def _read_line(self) -> bytes:
        try:
            return (await self._reader.readuntil(_CRLF))[:-2]
        except asyncio.IncompleteReadError:
            raise BadResponse("truncated chunked body") from None
        except asyncio.LimitOverrunError:
            raise BadResponse("chunk line too long") from None

    async def _read_chunked(self) -> bytes:
        body = bytearray()
        while True:
            size_text = (await self._read_line()).split(b";", 1)[0].strip(b" \t")
            if not _HEX.fullmatch(size_text):
                raise BadResponse("invalid chunk size")
            size = int(size_text, 16)
            if size == 0:
                break
            if len(body) + size > self._limits.max_body_bytes:
                raise BodyTooLarge
            body += await self._read_exactly(size)
            if await self._read_exactly(2) != _CRLF:
                raise BadResponse("chunk not terminated by CRLF")
        for _ in range(self._limits.max_headers + 1):  # trailer section, bounded like headers
            if not await self._read_line():
                return bytes(body)
        raise BadResponse("too many trailers")

    async def _read_until_close(self) -> bytes:
        limit = self._limits.max_body_bytes
        body = bytearray()
        while chunk := await self._reader.read(limit + 1 - len(body)):
            body += chunk
            if len(body) > limit:
                raise BodyTooLarge
        return bytes(body)


async def connect(
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    limits: HttpLimits = DEFAULT_LIMITS,
) -> HttpConnection:
    """Open a TCP (and, with ``ssl_context``, TLS) connection; errors are ``OSError``s."""
    loop = asyncio.get_running_loop()
    # The limit bounds readuntil(): the head and each chunk line.
    reader = asyncio.StreamReader(limit=limits.max_header_bytes, loop=loop)
    protocol = _Protocol(reader, loop=loop)
    transport, _ = await loop.create_connection(
        lambda: protocol,
        host,
        port,
        ssl=ssl_context,
        server_hostname=server_hostname if ssl_context else None,
    )
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return HttpConnection(reader, writer, protocol, limits)


class _Protocol(asyncio.StreamReaderProtocol):
    """asyncio's stream protocol, telling ``on_drop`` when the peer ends the connection."""

    on_drop: Callable[[], None] | None = None

    def _dropped(self) -> None:
        callback, self.on_drop = self.on_drop, None
        if callback is not None:
            callback()

    def eof_received(self) -> bool | None:
        self._dropped()
        return super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._dropped()
        super().connection_lost(exc)
