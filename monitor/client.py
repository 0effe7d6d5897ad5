"""A client for the monitor's HTTP API, for the dashboard, chaos runs and scripts.

It works the same against a local or a remote monitor: nothing here touches the monitor's
internals. The event stream resumes after a dropped connection from the last id it saw.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from monitor.errors import MonitorError


class MonitorClientError(MonitorError):
    """The monitor could not be reached, refused the request, or sent something unexpected."""


class MonitorClient:
    """``async with MonitorClient(url) as client: await client.snapshot()``."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._ssl = ssl_context
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> MonitorClient:
        self._session = aiohttp.ClientSession(
            headers=self._headers,
            connector=aiohttp.TCPConnector(ssl=self._ssl if self._ssl is not None else True),
        )
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("use MonitorClient as an async context manager")
        return self._session

    async def snapshot(self) -> dict[str, Any]:
        return await self._get_json("/api/v1/snapshot")

    async def chaos_runs(self) -> dict[str, Any]:
        return await self._get_json("/api/v1/chaos/runs")

    async def report_chaos(self, run: str, report: dict[str, Any]) -> None:
        """Tell the monitor a chaos run's phase and faults (see ``monitor.chaos_board``)."""
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        url = f"{self.base_url}/api/v1/chaos/runs/{run}"
        try:
            async with self.session.put(url, json=report, timeout=timeout) as response:
                if response.status == 204:
                    return
                try:
                    why = str((await response.json()).get("error", ""))[:200]
                except (aiohttp.ClientError, ValueError, AttributeError):
                    why = ""
                raise MonitorClientError(
                    f"{response.url.path}: HTTP {response.status}" + (f": {why}" if why else "")
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise MonitorClientError(f"monitor at {self.base_url}: {type(exc).__name__}") from None

    async def healthy(self) -> bool:
        try:
            await self._get_json("/healthz")
        except MonitorClientError:
            return False
        return True

    async def events(
        self, after: int | None = None, *, retry_delay: float = 1.0
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield events as dicts, forever; reconnects and resumes after the last id seen.

        ``after=None`` starts with what happens from now on; ``after=0`` replays what the
        monitor still holds. Raises ``MonitorClientError`` only for a refused request (401,
        404...), not for a dropped connection.
        """
        last = after
        while True:
            try:
                async for event in self._stream(last):
                    last = event["seq"]
                    yield event
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError):
                pass
            await asyncio.sleep(retry_delay)

    async def _stream(self, after: int | None) -> AsyncIterator[dict[str, Any]]:
        headers = {"Accept": "text/event-stream"}
        if after is not None:
            headers["Last-Event-ID"] = str(after)
        # No total timeout on a stream; the server's pings keep the read timeout from firing.
        timeout = aiohttp.ClientTimeout(total=None, connect=self._timeout, sock_read=60)
        url = f"{self.base_url}/api/v1/events"
        async with self.session.get(url, headers=headers, timeout=timeout) as response:
            _check(response)
            data: list[str] = []
            async for raw in response.content:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if line.startswith("data:"):
                    data.append(line[5:].lstrip())
                elif not line and data:
                    yield json.loads("\n".join(data))
                    data = []

    async def _get_json(self, path: str) -> dict[str, Any]:
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        try:
            async with self.session.get(self.base_url + path, timeout=timeout) as response:
                _check(response)
                return await response.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise MonitorClientError(f"monitor at {self.base_url}: {type(exc).__name__}") from None


def _check(response: aiohttp.ClientResponse) -> None:
    if response.status != 200:
        raise MonitorClientError(f"{response.url.path}: HTTP {response.status}")
