"""Where the dashboard's data comes from: the monitor's HTTP API, through its client.

A feed keeps the model current and says when the connection is lost or back. It polls the
snapshot (probe results, latencies, certificates) and follows the event stream (transitions,
shown at once). The poll interval stretches with the snapshot's cost so that a very large fleet
never keeps the dashboard busy parsing, and an event storm (thousands of transitions a second)
pauses the event stream rather than the dashboard. Another source (MQTT) is another class with
the same ``run(sink)`` coroutine.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ssl
import time
from collections import deque
from collections.abc import Mapping
from typing import Any, Protocol

from monitor.client import MonitorClient, MonitorClientError

POLL_INTERVAL = 1.0  # seconds between snapshots at the least
POLL_COST_SHARE = 0.05  # a snapshot may cost at most this share of a core between polls
RETRY_MAX = 5.0  # seconds between reconnection attempts at the most
STORM_RATE = 2000.0  # events a second above which the event stream is not followed
YIELD_EVERY = 100  # events handled before the stream lets other work run
FREEZE_FROM = 2000  # agents in a snapshot from which its data is frozen out of collections
TIMEOUT = 5.0


class FeedSink(Protocol):
    """What a feed writes into (the dashboard app)."""

    async def feed_snapshot(self, snapshot: Mapping[str, Any]) -> None: ...

    def feed_event(self, event: Mapping[str, Any]) -> None: ...

    def feed_connection(self, online: bool, detail: str) -> None: ...

    def feed_note(self, text: str) -> None: ...


class Feed(Protocol):
    source: str  # shown in the header: where the data comes from

    async def run(self, sink: FeedSink) -> None: ...


class HttpFeed:
    """The monitor's ``/api/v1/snapshot`` and ``/api/v1/events`` through ``MonitorClient``."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        poll_interval: float = POLL_INTERVAL,
        timeout: float = TIMEOUT,
    ) -> None:
        self.source = url
        self._token = token
        self._ssl = ssl_context
        self._poll_interval = poll_interval
        self._timeout = timeout

    async def run(self, sink: FeedSink) -> None:
        """Until cancelled: poll, follow events, and reconnect with back-off when lost."""
        client = MonitorClient(
            self.source, token=self._token, ssl_context=self._ssl, timeout=self._timeout
        )
        async with client:
            events: asyncio.Task[None] | None = None
            online: bool | None = None
            retry = self._poll_interval
            costs: deque[float] = deque(maxlen=3)
            storm = StormGuard()
            try:
                while True:
                    # CPU time of this thread, not wall time: waiting for a slow or remote
                    # monitor costs the dashboard nothing, parsing a large snapshot does.
                    started = time.thread_time()
                    try:
                        last = await self._take_snapshot(client, sink)
                    except MonitorClientError as exc:
                        if online is not False:
                            online = False
                            sink.feed_connection(False, str(exc))
                        await asyncio.sleep(retry)
                        retry = min(retry * 2, RETRY_MAX)
                        continue
                    if not online:
                        online, retry = True, self._poll_interval
                        sink.feed_connection(True, "")
                    if storm.update(last, sink):
                        if events is not None:
                            events.cancel()
                    elif events is None or events.done():
                        events = asyncio.create_task(self._follow(client, sink, last))
                    costs.append(time.thread_time() - started)
                    await asyncio.sleep(self._next_poll(costs))
            finally:
                if events is not None:
                    events.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await events

    @staticmethod
    async def _take_snapshot(client: MonitorClient, sink: FeedSink) -> Any:
        """Fetch and apply one snapshot; returns its ``last_event``.

        Snapshot data has no reference cycles: reference counting frees it. Parsing a large
        fleet's snapshot would set off full collections that walk every agent's data, pausing
        the screen for a few hundred milliseconds; so no collection runs while it is parsed,
        and for a large fleet what it leaves behind is frozen out of later ones (the price:
        cyclic garbage that was alive at that moment is never collected, a few KB at most).
        """
        gc.disable()
        try:
            snapshot = await client.snapshot()
            await sink.feed_snapshot(snapshot)
            if len(snapshot.get("agents") or ()) >= FREEZE_FROM:
                gc.freeze()
            return snapshot.get("last_event")
        finally:
            gc.enable()

    def _next_poll(self, costs: deque[float]) -> float:
        if len(costs) < (costs.maxlen or 1):
            return self._poll_interval
        # The least of the last few: a redraw that ran meanwhile is not the snapshot's cost.
        return max(self._poll_interval, min(costs) / POLL_COST_SHARE)

    async def _follow(self, client: MonitorClient, sink: FeedSink, after: Any) -> None:
        start = after if isinstance(after, int) else None
        # A refused stream (401, 404) ends the task: the snapshot poll reports the cause and
        # starts a new stream once the monitor answers again.
        with contextlib.suppress(MonitorClientError):
            count = 0
            async for event in client.events(after=start):
                sink.feed_event(event)
                count += 1
                if count % YIELD_EVERY == 0:
                    # Buffered events are read without a pause: let keys and redraws in.
                    await asyncio.sleep(0)


class StormGuard:
    """Stops following events while the monitor emits more than anyone can read.

    The rate comes from the snapshots' ``last_event``, so it is known without reading the
    stream. Above ``STORM_RATE`` events a second the log pauses and the states come from the
    snapshots alone; below half of it, the stream is followed again.
    """

    def __init__(self) -> None:
        self.storming = False
        self._previous: tuple[float, int] | None = None

    def update(self, last_event: Any, sink: FeedSink) -> bool:
        """Take in a snapshot's ``last_event``; returns whether events should pause."""
        if not isinstance(last_event, int):
            return False
        now = time.monotonic()
        previous, self._previous = self._previous, (now, last_event)
        if previous is None or last_event < previous[1] or now <= previous[0]:
            return self.storming  # the first snapshot, or a restarted monitor
        rate = (last_event - previous[1]) / (now - previous[0])
        threshold = STORM_RATE / 2 if self.storming else STORM_RATE
        if (rate > threshold) != self.storming:
            self.storming = not self.storming
            sink.feed_note(
                f"event storm: {rate:,.0f} events/s; the log pauses and states come from snapshots"
                if self.storming
                else f"event storm over ({rate:,.0f} events/s): following events again"
            )
        return self.storming
