"""Listening sockets that hand each accepted connection to a shared aiohttp server.

A socket stays bound while its listener is closed, so a stopped agent refuses connections
(nothing listens) yet keeps its port. The TLS context is chosen per accepted connection,
which lets certificate and protocol conditions apply to new connections at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import struct
import weakref
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

BACKLOG = 128
PEEK_TIMEOUT_S = 5.0
ACCEPT_BACKOFF_S = 0.1
HANDSHAKE_TIMEOUT_S = 10.0
TLS_RECORD_HANDSHAKE = 0x16  # first byte of a TLS ClientHello record

ChooseSSL = Callable[[socket.socket], Awaitable[ssl.SSLContext | None]]


class Listener:
    """One bound address:port that can start and stop listening; calls ``on_accept``."""

    def __init__(self, address: str, on_accept: Callable[[socket.socket], None]) -> None:
        self.address = address
        self.port = 0
        self._on_accept = on_accept
        self._sock: socket.socket | None = None
        self.listening = False

    def bind(self) -> None:
        """Take the port (a fresh one the first time) without listening on it."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.address, self.port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self.port = sock.getsockname()[1]

    def listen(self) -> None:
        if self.listening:
            return
        if self._sock is None:
            self.bind()
        assert self._sock is not None
        self._sock.listen(BACKLOG)
        asyncio.get_running_loop().add_reader(self._sock.fileno(), self._accept_ready)
        self.listening = True

    def unlisten(self) -> None:
        """Stop listening but keep the port: close the socket and bind a fresh one."""
        if not self.listening:
            return
        self.close()
        self.bind()

    def close(self) -> None:
        if self._sock is None:
            return
        if self.listening:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self.listening = False
        self._sock.close()
        self._sock = None

    def _resume(self, sock: socket.socket) -> None:
        if self.listening and self._sock is sock:
            asyncio.get_running_loop().add_reader(sock.fileno(), self._accept_ready)

    def _accept_ready(self) -> None:
        assert self._sock is not None
        for _ in range(BACKLOG):  # drain the queue, but let other readers run too
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # E.g. out of file descriptors: the connection stays queued and the socket
                # stays readable, so back off briefly instead of spinning on it.
                log.warning("accept failed on %s:%s: %s", self.address, self.port, exc.strerror)
                loop = asyncio.get_running_loop()
                loop.remove_reader(self._sock.fileno())
                loop.call_later(ACCEPT_BACKOFF_S, self._resume, self._sock)
                return
            conn.setblocking(False)
            self._on_accept(conn)


async def starts_with_tls(sock: socket.socket) -> bool | None:
    """Peek at the first byte: True for a TLS handshake, False for anything else, None if
    the client sent nothing in time or went away."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    loop.add_reader(sock.fileno(), lambda: ready.done() or ready.set_result(None))
    try:
        await asyncio.wait_for(ready, PEEK_TIMEOUT_S)
        first = sock.recv(1, socket.MSG_PEEK)
    except (TimeoutError, OSError):
        return None
    finally:
        loop.remove_reader(sock.fileno())
    if not first:
        return None
    return first[0] == TLS_RECORD_HANDSHAKE


class Connections:
    """Hands sockets to an aiohttp server and keeps the resulting transports, so they can be
    reset all at once (a stopped process does not close connections politely)."""

    def __init__(self) -> None:
        self._transports: weakref.WeakSet[asyncio.BaseTransport] = weakref.WeakSet()
        self._tasks: set[asyncio.Task[None]] = set()

    def serve(
        self,
        sock: socket.socket,
        server: Callable[[], asyncio.Protocol],
        choose_ssl: ChooseSSL | None,
    ) -> None:
        """Serve ``sock`` with ``server``; ``choose_ssl`` picks its TLS context (None: plain)."""
        task = asyncio.get_running_loop().create_task(self._serve(sock, server, choose_ssl))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(
        self,
        sock: socket.socket,
        server: Callable[[], asyncio.Protocol],
        choose_ssl: ChooseSSL | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            ctx = await choose_ssl(sock) if choose_ssl else None
            transport, _ = await loop.connect_accepted_socket(
                server,
                sock,
                ssl=ctx,
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S if ctx else None,
            )
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError):
            # Failed handshakes are the point of several conditions: not worth a log line.
            sock.close()
            return
        self._transports.add(transport)

    def reset_all(self) -> None:
        """Abort every open connection with a TCP reset."""
        for transport in list(self._transports):
            if transport.is_closing():
                continue
            raw = transport.get_extra_info("socket")
            if raw is not None:
                with contextlib.suppress(OSError):
                    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        self._transports = weakref.WeakSet()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.reset_all()
