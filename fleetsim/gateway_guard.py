"""What a gateway does before it routes a call: a rate limit per client and, when its group is
made insecure for headers, a screen that answers faulty request heads with 500.

The secure gateway needs no screen: aiohttp's parser already refuses an oversized header,
control characters in a value and Content-Length with Transfer-Encoding (400). The screen
stands in for a gateway that crashes on them instead, which is what the audit must find.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

# Per client address and endpoint (method and path): 150 calls a second with bursts of 20.
# Load runs spread over several endpoints (and fill placeholders in paths) stay below it;
# 50 calls to one endpoint sent at once do not. The simulator itself answers about 1,000
# calls a second, so a limit much higher could not be reached by a short burst at all.
RATE_LIMIT_RPS = 150.0
RATE_LIMIT_BURST = 20
MAX_CLIENTS = 4096
# The screen looks at the first request head of a connection, up to this size.
MAX_HEAD = 256 * 1024
MAX_FIELD = 8190  # aiohttp's own limit for one header line
_CRASH = (
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
    b'Content-Length: 28\r\nConnection: close\r\n\r\n{"error": "internal error"}\n'
)


class RateLimiter:
    """A token bucket per key (client address, method, path)."""

    def __init__(self, rate: float = RATE_LIMIT_RPS, burst: int = RATE_LIMIT_BURST) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._buckets: dict[tuple[str, ...], tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, client: tuple[str, ...]) -> float | None:
        """None when the call may pass; else the seconds until the next token."""
        now = time.monotonic()
        if len(self._buckets) >= MAX_CLIENTS and client not in self._buckets:
            self._buckets.clear()  # bounded memory; forgetting clients only lets calls through
        tokens, at = self._buckets.get(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens >= 1.0:
            self._buckets[client] = (tokens - 1.0, now)
            return None
        self._buckets[client] = (tokens, now)
        return (1.0 - tokens) / self.rate


def faulty_head(head: bytes) -> bool:
    """A request head aiohttp would refuse: a line too long, a control character, or both
    Content-Length and Transfer-Encoding."""
    lines = head.split(b"\r\n")
    names = set()
    for line in lines[1:]:
        if len(line) > MAX_FIELD:
            return True
        if any((b < 0x20 and b != 0x09) or b == 0x7F for b in line):
            return True
        names.add(line.partition(b":")[0].strip().lower())
    return b"content-length" in names and b"transfer-encoding" in names


class _Screen(asyncio.Protocol):
    """Passes everything to the real protocol, after screening the first request head."""

    def __init__(self, inner: Any, lax: Callable[[], bool]) -> None:
        self._inner = inner
        self._lax = lax
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._screening = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self._screening:
            self._inner.data_received(data)
            return
        if not self._buffer and not self._lax():
            self._screening = False
            self._inner.data_received(data)
            return
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0 and len(self._buffer) <= MAX_HEAD:
            return
        if end < 0 or faulty_head(bytes(self._buffer[:end])):
            self._screening = False
            self._buffer.clear()
            if self._transport is not None:
                self._transport.write(_CRASH)
                self._transport.close()
            return
        self._screening = False
        held, self._buffer = bytes(self._buffer), bytearray()
        self._inner.data_received(held)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


def screened(inner: Any, lax: Callable[[], bool]) -> asyncio.Protocol:
    """``inner`` (aiohttp's protocol) behind a screen active while ``lax()`` is true."""
    return _Screen(inner, lax)
