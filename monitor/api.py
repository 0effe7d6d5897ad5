"""The monitor's HTTP API: snapshot, Server-Sent Events, health and Prometheus metrics.

A read-only view of the StateStore. ``GET /api/v1/events`` streams transitions as SSE; a client
that reconnects with ``Last-Event-ID`` (or ``?after=N``) first gets what it missed, as far as the
bounded event log still holds it. An optional bearer token protects everything but ``/healthz``.

The one write: a chaos run reports its phase and faults (``PUT /api/v1/chaos/runs/RUN``, see
``monitor.chaos_board``). Without a token it is taken only from a loopback client.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import ipaddress
import json
import re
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

from monitor.chaos_board import ChaosBoard, ChaosReportError
from monitor.collector import PAUSE, Pause, cooperative
from monitor.state import StateStore

API_PREFIX = "/api/v1"
PING_INTERVAL = 15.0  # seconds between SSE keep-alive comments

STORE_KEY = web.AppKey("store", StateStore)
STREAMS_KEY = web.AppKey("streams", weakref.WeakSet)  # SSE handler tasks, ended on shutdown
SNAPSHOT_KEY = web.AppKey("snapshot", Callable)
CHAOS_KEY = web.AppKey("chaos", ChaosBoard)
TOKEN_SET_KEY = web.AppKey("token_set", bool)
MAX_REPORT = 64 * 1024  # bytes in one chaos report


def create_app(
    store: StateStore,
    registry: CollectorRegistry,
    *,
    token: str | None = None,
    snapshot: Callable[[], Mapping[str, object]] | None = None,
    ping_interval: float = PING_INTERVAL,
    chaos: ChaosBoard | None = None,
) -> web.Application:
    """Build the API application.

    ``snapshot`` returns the JSON for ``/api/v1/snapshot``; by default the store's own.
    ``chaos`` takes chaos run reports; without it there are no chaos routes.
    """
    app = web.Application(
        middlewares=[_auth_middleware(token)] if token else [], client_max_size=MAX_REPORT
    )
    app[STORE_KEY] = store
    app[STREAMS_KEY] = weakref.WeakSet()
    app[SNAPSHOT_KEY] = snapshot or store.snapshot
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics_handler(registry))
    app.router.add_get(f"{API_PREFIX}/snapshot", _snapshot)
    app.router.add_get(f"{API_PREFIX}/events", _events_handler(ping_interval))
    if chaos is not None:
        app[CHAOS_KEY] = chaos
        app[TOKEN_SET_KEY] = bool(token)
        app.router.add_get(f"{API_PREFIX}/chaos/runs", _chaos_runs)
        app.router.add_put(f"{API_PREFIX}/chaos/runs/{{run}}", _chaos_report)
    app.on_shutdown.append(_close_streams)
    return app


def _auth_middleware(token: str):
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def check(request: web.Request, handler):
        if request.path != "/healthz":
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return _error(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})
        return await handler(request)

    return check


# Prometheus text format 0.0.4 as prometheus_client's generate_latest writes it, built faster
# for what a monitor exports: tens of series per agent, the same label values over and over.
# Anything out of the ordinary (a name outside the legacy character set) goes to
# generate_latest itself; a test holds the two to the same bytes.
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_TYPE_MUNGING = {
    "counter": ("_total", "counter"),
    "info": ("_info", "gauge"),
    "stateset": ("", "gauge"),
    "gaugehistogram": ("", "histogram"),
    "unknown": ("", "untyped"),
}
_OM_SUFFIXES = ("_created", "_gsum", "_gcount")


class _Unusual(Exception):
    """A family the fast path does not write; generate_latest does."""


RENDER_SLICE = 5000  # series written between two pauses of a cooperative render


def render_metrics(families: list[Metric]) -> bytes:
    """The text exposition of ``families``, byte for byte what ``generate_latest`` makes."""
    try:
        return "".join(p for p in _render(families) if p is not PAUSE).encode()
    except _Unusual:
        return generate_latest(_Collected(families))


WRITE_CHUNK = 256 * 1024  # bytes (about) per write of a /metrics body


async def render_chunks_cooperatively(families: list[Metric]) -> list[bytes]:
    """``render_metrics`` in pieces of about ``WRITE_CHUNK`` bytes, made on the event loop
    letting other work run every few thousand series."""
    chunks: list[bytes] = []
    pending: list[str] = []
    size = 0
    try:
        for part in _render(families):
            if part is PAUSE:
                await asyncio.sleep(0)
                continue
            pending.append(part)
            size += len(part)
            if size >= WRITE_CHUNK:
                chunks.append("".join(pending).encode())
                pending.clear()
                size = 0
    except _Unusual:
        return [generate_latest(_Collected(families))]
    chunks.append("".join(pending).encode())
    return chunks


def _render(families: list[Metric]) -> Iterator[str | Pause]:
    pairs: dict[tuple[str, str], str] = {}  # (label, value) -> 'label="value"'
    names: set[str] = set()  # sample names already checked
    written = 0

    def line(sample) -> str:
        name = sample.name
        if name not in names:
            if not _METRIC_NAME.fullmatch(name):
                raise _Unusual
            names.add(name)
        labels = sample.labels
        if labels:
            parts = []
            for pair in sorted(labels.items()):
                text = pairs.get(pair)
                if text is None:
                    key, value = pair
                    if not _LABEL_NAME.fullmatch(key):
                        raise _Unusual
                    value = value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
                    text = pairs[pair] = f'{key}="{value}"'
                parts.append(text)
            name = f"{name}{{{','.join(parts)}}}"
        stamp = ""
        if sample.timestamp is not None:
            stamp = f" {int(float(sample.timestamp) * 1000):d}"
        return f"{name} {floatToGoString(sample.value)}{stamp}\n"

    for metric in families:
        suffix, kind = _TYPE_MUNGING.get(metric.type, ("", metric.type))
        name = metric.name + suffix
        if not _METRIC_NAME.fullmatch(name) or not _METRIC_NAME.fullmatch(metric.name):
            raise _Unusual
        doc = metric.documentation.replace("\\", r"\\").replace("\n", r"\n")
        yield f"# HELP {name} {doc}\n# TYPE {name} {kind}\n"
        om_names = {metric.name + s: s for s in _OM_SUFFIXES}
        om_lines: dict[str, list[str]] = {}
        out: list[str] = []
        for sample in metric.samples:
            om = om_names.get(sample.name)
            if om is None:
                out.append(line(sample))
            else:  # OpenMetrics-only samples go into a gauge of their own, after the family
                om_lines.setdefault(om, []).append(line(sample))
            written += 1
            if written % RENDER_SLICE == 0:
                yield "".join(out)
                out.clear()
                yield PAUSE
        yield "".join(out)
        for om, lines in sorted(om_lines.items()):
            yield f"# HELP {metric.name}{om} {doc}\n# TYPE {metric.name}{om} gauge\n"
            yield "".join(lines)


class _Collected:
    """Metric families already collected, for ``generate_latest`` to format."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


def _metrics_handler(
    registry: CollectorRegistry,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def metrics(request: web.Request) -> web.StreamResponse:
        # At thousands of agents one scrape is seconds of work. It runs on the loop, in
        # slices (the collector pauses every few hundred agents, the writer every few thousand
        # series) with probes run in between, so none is due for more than a slice. (In a
        # thread, every probe callback would wait for the GIL instead.) A change made in
        # between shows in some series and not yet in others, as if the scrape had come a
        # moment later.
        # No garbage collection meanwhile: the scrape allocates a quarter of a million
        # objects at 10,000 agents, enough to set off full collections (up to a second each
        # over a big heap, with the loop stopped). What it allocates has no cycles and goes
        # when it is done, by reference counting.
        collecting = gc.isenabled()
        gc.disable()
        try:
            chunks = await _scrape(registry)
        finally:
            if collecting:
                gc.enable()
        # Tens of megabytes at 10,000 agents: sent in pieces, each compressed (when the
        # client asks for it, as Prometheus does) in a thread, so neither the joining nor the
        # compressing of one whole body stops the loop.
        response = web.StreamResponse(headers={"Content-Type": CONTENT_TYPE_LATEST})
        response.enable_compression()
        await response.prepare(request)
        with contextlib.suppress(ConnectionResetError):  # the scraper gave up: nothing to do
            for chunk in chunks:
                await response.write(chunk)
            await response.write_eof()
        return response

    return metrics


async def _scrape(registry: CollectorRegistry) -> list[bytes]:
    """Collect and write on the loop in slices (see the metrics handler)."""
    token = cooperative.set(True)
    try:
        families = []
        for item in registry.collect():
            if item is PAUSE:
                await asyncio.sleep(0)
            else:
                families.append(item)
    except (RuntimeError, KeyError):
        # A dict that changed size or an agent a reload removed while we paused: collect
        # again in one go, without pauses, where nothing changes meanwhile.
        cooperative.set(False)
        families = list(registry.collect())
    finally:
        cooperative.reset(token)
    return await render_chunks_cooperatively(families)


async def _healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _snapshot(request: web.Request) -> web.Response:
    return web.json_response(request.app[SNAPSHOT_KEY]())


async def _chaos_runs(request: web.Request) -> web.Response:
    return web.json_response(request.app[CHAOS_KEY].snapshot())


async def _chaos_report(request: web.Request) -> web.Response:
    if not request.app[TOKEN_SET_KEY] and not _loopback(request.remote):
        return _error(403, "chaos reports need the API token from a client off this host")
    try:
        body = await request.json()
    except web.HTTPRequestEntityTooLarge:
        return _error(413, f"report larger than {MAX_REPORT} bytes")
    except ValueError:
        return _error(400, "report: expected JSON")
    try:
        request.app[CHAOS_KEY].report(request.match_info["run"], body)
    except ChaosReportError as exc:
        return _error(422, str(exc))
    return web.Response(status=204)


def _loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


def _error(status: int, text: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response({"error": text}, status=status, headers=headers)


def _start_after(request: web.Request, last_seq: int) -> int:
    raw = request.headers.get("Last-Event-ID") or request.query.get("after")
    if raw is None:
        return last_seq  # a new client gets what happens from now on
    try:
        after = int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text="Last-Event-ID / after must be an integer") from None
    # An id from before a monitor restart may be ahead of this log: replay all we have.
    return after if 0 <= after <= last_seq else 0


def _events_handler(ping_interval: float):
    async def events(request: web.Request) -> web.StreamResponse:
        store = request.app[STORE_KEY]
        after = _start_after(request, store.events.last_seq)
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        task = asyncio.current_task()
        if task is not None:
            request.app[STREAMS_KEY].add(task)
        with contextlib.suppress(ConnectionResetError, asyncio.CancelledError):
            async for chunk in _event_chunks(store, after, ping_interval):
                await response.write(chunk)
        return response

    return events


async def _event_chunks(store: StateStore, after: int, ping: float) -> AsyncIterator[bytes]:
    yield b"retry: 2000\n\n"
    while True:
        try:
            events = await asyncio.wait_for(store.events.wait(after), ping)
        except TimeoutError:
            yield b": ping\n\n"
            continue
        for event in events:
            data = json.dumps(event.to_dict(), separators=(",", ":"))
            yield f"id: {event.seq}\nevent: {event.kind}\ndata: {data}\n\n".encode()
            after = event.seq


async def _close_streams(app: web.Application) -> None:
    # Endless streams would otherwise hold a graceful shutdown until its timeout.
    for task in list(app[STREAMS_KEY]):
        task.cancel()
