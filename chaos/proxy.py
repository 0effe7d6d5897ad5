"""A small TCP fault proxy in asyncio, in the manner of Toxiproxy.

It sits between a load balancer and an agent: each *route* listens on one address and
forwards every connection to one upstream, byte for byte (TLS passes through untouched).
Toxics (``chaos.proxy_toxics``) slow, cut, slice or reset the traffic of a route; a route
can be disabled ("down": listener and connections closed, new connects refused). Both are
driven through a small JSON control API (see docs/chaos-proxy.md).

Memory per connection is bounded: each direction holds at most one chunk it has read, and
it reads the next only after the previous one was written and drained, so a slow side
pushes back on the other through TCP instead of piling up here. With the stream limit at
one chunk, a direction holds at most about 2 x 16 KiB read ahead, the chunk in hand and
64 KiB waiting to be written: under a quarter of a MiB per connection, both ways.

Run it with ``python -m chaos.proxy --control HOST:PORT --route NAME=HOST:PORT,HOST:PORT``
(or ``agentha chaos proxy ...``); it prints one JSON line when ready and stops on SIGTERM or
SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import socket
import struct
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from chaos.errors import ChaosError
from chaos.proxy_toxics import NAME_RE, Toxic, parse_toxic

CHUNK = 16 * 1024
CONNECT_TIMEOUT_S = 5.0
CONTROL_BODY_MAX = 64 * 1024


class ProxyError(ChaosError):
    """The proxy cannot start or serve (an address in use, a bad route)."""


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    listen: tuple[str, int]
    upstream: tuple[str, int]


def parse_address(text: str, what: str, *, allow_zero: bool = True) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) -> (host, port); ``ValueError`` naming ``what``."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not host:
        raise ValueError(f"{what}: expected HOST:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"{what}: port must be a number, got {port_text!r}") from None
    if not (0 if allow_zero else 1) <= port <= 65535:
        raise ValueError(f"{what}: port out of range: {port}")
    return host, port


def parse_route(text: str) -> Route:
    """``NAME=LISTEN_HOST:PORT,UPSTREAM_HOST:PORT`` -> Route; ``ValueError`` in one line."""
    name, sep, rest = text.partition("=")
    if not sep:
        raise ValueError(f"route {text!r}: expected NAME=LISTEN_HOST:PORT,UPSTREAM_HOST:PORT")
    if not NAME_RE.match(name):
        raise ValueError(f"route {text!r}: name must be 1-64 letters, digits, '_', '.' or '-'")
    listen, sep, upstream = rest.partition(",")
    if not sep:
        raise ValueError(f"route {name}: expected LISTEN_HOST:PORT,UPSTREAM_HOST:PORT")
    return Route(
        name,
        parse_address(listen, f"route {name} listen"),
        parse_address(upstream, f"route {name} upstream", allow_zero=False),
    )


def _hostport(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class RouteState:
    """One route at run time: its listener, open connections and current toxics."""

    def __init__(self, route: Route) -> None:
        self.route = route
        self.name = route.name
        self.listen = route.listen  # the port becomes the bound one after the first start
        self.enabled = True
        self.toxics: dict[str, Toxic] = {}
        self.connections: set[Connection] = set()
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._changed = asyncio.Event()

    @property
    def changed(self) -> asyncio.Event:
        """Set (and replaced) whenever toxics change; waiters re-read ``toxics``."""
        return self._changed

    def has(self, toxic: Toxic) -> bool:
        return self.toxics.get(toxic.name) is toxic

    def notify(self) -> None:
        old, self._changed = self._changed, asyncio.Event()
        old.set()
        for connection in list(self.connections):
            connection.refresh()

    def add_toxic(self, toxic: Toxic) -> None:
        self.toxics[toxic.name] = toxic
        self.notify()

    def remove_toxic(self, name: str) -> bool:
        if self.toxics.pop(name, None) is None:
            return False
        self.notify()
        return True

    def clear_toxics(self) -> list[str]:
        names = list(self.toxics)
        self.toxics.clear()
        self.notify()
        return names

    async def start(self) -> None:
        host, port = self.listen
        try:
            self._server = await asyncio.start_server(self._accept, host, port, limit=CHUNK)
        except OSError as exc:
            raise ProxyError(
                f"route {self.name}: cannot listen on {_hostport(self.listen)}: "
                f"{exc.strerror or exc}"
            ) from None
        self.listen = (host, self._server.sockets[0].getsockname()[1])
        self.enabled = True

    async def stop(self) -> None:
        """Close the listener and every connection (``down``); new connects are refused."""
        self.enabled = False
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for connection in list(self.connections):
            connection.close()
        if server is not None:
            await server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        await Connection(self, reader, writer).run()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listen": _hostport(self.listen),
            "upstream": _hostport(self.route.upstream),
            "enabled": self.enabled,
            "toxics": [toxic.to_json() for toxic in self.toxics.values()],
            "connections": len(self.connections),
            "accepted_total": self.accepted,
        }


class _Closed(Exception):
    """The connection was closed under a pump (down, timeout, reset)."""


class Connection:
    """One client connection and its upstream: two pumps, one per direction."""

    def __init__(
        self, route: RouteState, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.route = route
        self.client = (reader, writer)
        self.upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.closed = False
        self._applies: dict[int, bool] = {}  # toxic serial -> drawn once for this connection
        self._timers: dict[int, asyncio.Task[None]] = {}
        self._pumps: list[asyncio.Task[None]] = []
        self._send_at = {"upstream": 0.0, "downstream": 0.0}  # bandwidth pacing

    def active(self, direction: str | None = None) -> list[Toxic]:
        """The route's toxics that apply to this connection (in the order they were added)."""
        out = []
        for toxic in list(self.route.toxics.values()):
            if direction is not None and toxic.direction != direction:
                continue
            hit = self._applies.get(toxic.serial)
            if hit is None:
                hit = self._applies[toxic.serial] = toxic.applies()
            if hit:
                out.append(toxic)
        return out

    def refresh(self) -> None:
        """Start (or drop) the close timers of timeout toxics after a change of toxics."""
        if self.closed:
            return
        wanted = {
            t.serial: t
            for t in self.active()
            if t.type == "timeout" and t.attributes["timeout_ms"] > 0
        }
        for serial in list(self._timers):
            if serial not in wanted:
                self._timers.pop(serial).cancel()
        for serial, toxic in wanted.items():
            if serial not in self._timers:
                self._timers[serial] = asyncio.create_task(self._close_after(toxic))

    async def _close_after(self, toxic: Toxic) -> None:
        await asyncio.sleep(toxic.attributes["timeout_ms"] / 1000)
        if self.route.has(toxic):
            self.close()

    async def run(self) -> None:
        self.route.connections.add(self)
        try:
            try:
                self.upstream = await asyncio.wait_for(
                    asyncio.open_connection(*self.route.route.upstream, limit=CHUNK),
                    CONNECT_TIMEOUT_S,
                )
            except (OSError, TimeoutError):
                return  # the client sees its connection closed, as with a dead upstream
            if self.closed:
                return
            self.refresh()
            self._pumps = [
                asyncio.create_task(self._pump("upstream", self.client[0], self.upstream[1])),
                asyncio.create_task(self._pump("downstream", self.upstream[0], self.client[1])),
            ]
            await asyncio.gather(*self._pumps, return_exceptions=True)
        finally:
            self.close()
            self.route.connections.discard(self)

    def close(self, *, reset: bool = False) -> None:
        """Close both sides (with ``reset``: RST through SO_LINGER 0) and stop the pumps."""
        if self.closed:
            return
        self.closed = True
        self.route.connections.discard(self)
        current = asyncio.current_task()
        for task in [*self._pumps, *self._timers.values()]:
            if task is not current:
                task.cancel()
        for pair in (self.client, self.upstream):
            if pair is None:
                continue
            transport = pair[1].transport
            if reset:
                sock = pair[1].get_extra_info("socket")
                with contextlib.suppress(OSError, AttributeError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                transport.abort()
            else:
                transport.close()

    async def _pump(
        self, direction: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while not self.closed:
                data = await reader.read(CHUNK)
                if not data:
                    break
                await self._forward(direction, data, writer)
            for toxic in self.active(direction):
                if toxic.type == "slow_close":
                    await asyncio.sleep(toxic.attributes["delay_ms"] / 1000)
            if not self.closed and writer.can_write_eof():
                writer.write_eof()  # half-close: the other direction may still carry data
            elif not self.closed:
                self.close()
        except _Closed:
            return
        except OSError:
            self.close()  # one side failed: there is nothing left to proxy

    async def _wait_while(self, toxic: Toxic, seconds: float | None) -> bool:
        """Wait ``seconds`` (None: forever) while ``toxic`` stays; False if it was removed."""
        loop = asyncio.get_running_loop()
        deadline = None if seconds is None else loop.time() + seconds
        while self.route.has(toxic):
            changed = self.route.changed
            if deadline is None:
                await changed.wait()
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                return True
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                return True
        return False

    async def _forward(self, direction: str, data: bytes, writer: asyncio.StreamWriter) -> None:
        toxics = self.active(direction)
        for toxic in toxics:
            if toxic.type == "latency":
                await self._wait_while(toxic, toxic.delay_s())
            elif toxic.type == "timeout":
                # Data stops here (this chunk held, nothing more read) until the toxic goes;
                # the connection's timer closes it after timeout_ms if that is > 0.
                await self._wait_while(toxic, None)
            elif toxic.type == "reset_peer" and await self._wait_while(
                toxic, toxic.attributes["timeout_ms"] / 1000
            ):
                self.close(reset=True)
                raise _Closed
        if self.closed:
            raise _Closed
        # Writing: the last slicer and bandwidth toxics that apply shape the chunk.
        slicer = next((t for t in reversed(toxics) if t.type == "slicer"), None)
        bandwidth = next((t for t in reversed(toxics) if t.type == "bandwidth"), None)
        if slicer is not None and not self.route.has(slicer):
            slicer = None
        if bandwidth is not None and not self.route.has(bandwidth):
            bandwidth = None
        pieces = slicer.slices(len(data)) if slicer else [len(data)]
        offset = 0
        for size in pieces:
            piece = data[offset : offset + size]
            offset += size
            if bandwidth is not None:
                await self._paced_write(direction, piece, writer, bandwidth)
            else:
                writer.write(piece)
                await writer.drain()
            if slicer is not None and slicer.attributes["delay_us"]:
                await asyncio.sleep(slicer.attributes["delay_us"] / 1_000_000)
            if self.closed:
                raise _Closed

    async def _paced_write(
        self, direction: str, data: bytes, writer: asyncio.StreamWriter, toxic: Toxic
    ) -> None:
        """Write at most rate_kbps (1 KB = 1000 bytes) in slices of a tenth of a second."""
        loop = asyncio.get_running_loop()
        per_s = toxic.attributes["rate_kbps"] * 1000
        step = max(1, per_s // 10)
        for offset in range(0, len(data), step):
            piece = data[offset : offset + step]
            now = loop.time()
            start = max(now, self._send_at[direction])
            if start > now:
                await asyncio.sleep(start - now)
            writer.write(piece)
            await writer.drain()
            self._send_at[direction] = start + len(piece) / per_s
            if self.closed:
                raise _Closed


class FaultProxy:
    """The routes and the control API, started and stopped together."""

    def __init__(self, control: tuple[str, int], routes: Sequence[Route]) -> None:
        names = [r.name for r in routes]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate is not None:
            raise ProxyError(f"route {duplicate}: named twice")
        if not routes:
            raise ProxyError("no routes: give at least one --route")
        self.control = control
        self.routes = {r.name: RouteState(r) for r in routes}
        self._runner: web.AppRunner | None = None

    @property
    def control_url(self) -> str:
        return f"http://{_hostport(self.control)}"

    async def start(self) -> None:
        try:
            for route in self.routes.values():
                await route.start()
            self._runner = web.AppRunner(create_app(self), access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.control[0], self.control[1])
            try:
                await site.start()
            except OSError as exc:
                raise ProxyError(
                    f"control: cannot listen on {_hostport(self.control)}: {exc.strerror or exc}"
                ) from None
            # The bound port, when 0 was asked for.
            self.control = (self.control[0], self._runner.addresses[0][1])
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        for route in self.routes.values():
            await route.stop()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def ready_info(self) -> dict[str, Any]:
        return {
            "control_url": self.control_url,
            "routes": {name: _hostport(r.listen) for name, r in self.routes.items()},
        }


async def serve_proxy(
    control: tuple[str, int],
    routes: list[Route],
    ready: Callable[[], None] | None = None,
) -> None:
    """Run the proxy until cancelled; ``ready`` is called once everything listens."""
    async with FaultProxy(control, routes):
        if ready is not None:
            ready()
        await asyncio.Future()


# --- control API ---------------------------------------------------------------------------

PROXY_KEY = web.AppKey("proxy", FaultProxy)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(exc.status, f"{request.method} {request.path}: {exc.reason}")


def _route(request: web.Request) -> RouteState:
    name = request.match_info["route"]
    route = request.app[PROXY_KEY].routes.get(name)
    if route is None:
        raise _NotFound(f"no route {name!r}")
    return route


class _NotFound(Exception):
    pass


async def _body(request: web.Request) -> Any:
    try:
        return await request.json()
    except (ValueError, UnicodeDecodeError):
        raise _BadBody("body: not valid JSON") from None


class _BadBody(Exception):
    pass


def _handler(
    fn: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await fn(request)
        except _NotFound as exc:
            return _error(404, str(exc))
        except (_BadBody, ValueError) as exc:
            return _error(400, str(exc))

    return wrapped


async def _list_routes(request: web.Request) -> web.StreamResponse:
    proxy = request.app[PROXY_KEY]
    return web.json_response({"routes": [r.to_json() for r in proxy.routes.values()]})


async def _get_route(request: web.Request) -> web.StreamResponse:
    return web.json_response(_route(request).to_json())


async def _patch_route(request: web.Request) -> web.StreamResponse:
    route = _route(request)
    body = await _body(request)
    if not isinstance(body, dict):
        raise ValueError("body: expected a JSON object")
    unknown = set(body) - {"enabled"}
    if unknown:
        raise ValueError(f"unknown field {sorted(unknown)[0]!r} (only 'enabled' can change)")
    enabled = body.get("enabled")
    if not isinstance(enabled, bool):
        raise ValueError(f"enabled: expected true or false, got {enabled!r}")
    if enabled and not route.enabled:
        try:
            await route.start()
        except ProxyError as exc:
            return _error(503, str(exc))
    elif not enabled and route.enabled:
        await route.stop()
    return web.json_response(route.to_json())


async def _list_toxics(request: web.Request) -> web.StreamResponse:
    route = _route(request)
    return web.json_response({"toxics": [t.to_json() for t in route.toxics.values()]})


async def _add_toxic(request: web.Request) -> web.StreamResponse:
    route = _route(request)
    toxic = parse_toxic(await _body(request))
    if toxic.name in route.toxics:
        return _error(409, f"route {route.name}: toxic {toxic.name!r} exists already")
    route.add_toxic(toxic)
    return web.json_response(toxic.to_json(), status=201)


async def _delete_toxic(request: web.Request) -> web.StreamResponse:
    route = _route(request)
    name = request.match_info["toxic"]
    if not route.remove_toxic(name):
        raise _NotFound(f"route {route.name}: no toxic {name!r}")
    return web.json_response({"deleted": [name]})


async def _clear_toxics(request: web.Request) -> web.StreamResponse:
    return web.json_response({"deleted": _route(request).clear_toxics()})


def create_app(proxy: FaultProxy) -> web.Application:
    app = web.Application(middlewares=[_json_errors], client_max_size=CONTROL_BODY_MAX)
    app[PROXY_KEY] = proxy
    app.router.add_get("/routes", _handler(_list_routes))
    app.router.add_get("/routes/{route}", _handler(_get_route))
    app.router.add_patch("/routes/{route}", _handler(_patch_route))
    app.router.add_get("/routes/{route}/toxics", _handler(_list_toxics))
    app.router.add_post("/routes/{route}/toxics", _handler(_add_toxic))
    app.router.add_delete("/routes/{route}/toxics", _handler(_clear_toxics))
    app.router.add_delete("/routes/{route}/toxics/{toxic}", _handler(_delete_toxic))
    return app


# --- command line --------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m chaos.proxy", description="TCP fault proxy with a JSON control API."
    )
    parser.add_argument(
        "--control", required=True, metavar="HOST:PORT", help="address of the control API"
    )
    parser.add_argument(
        "--route",
        action="append",
        required=True,
        metavar="NAME=HOST:PORT,HOST:PORT",
        help="a route: its name, where it listens, and its upstream (repeatable)",
    )
    return parser.parse_args(argv)


async def run_proxy(control: tuple[str, int], routes: list[Route]) -> None:
    """Serve until SIGTERM or SIGINT; one JSON line on stdout says where, once ready."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with FaultProxy(control, routes) as proxy:
        print(json.dumps(proxy.ready_info()), flush=True)
        await stop.wait()


def serve_from_text(control: str, routes: Sequence[str]) -> None:
    """Parse the addresses as written and serve until a signal: ``ValueError`` for bad text,
    ``ProxyError`` when the proxy cannot listen."""
    address = parse_address(control, "--control")
    parsed = [parse_route(text) for text in routes]
    asyncio.run(run_proxy(address, parsed))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        serve_from_text(args.control, args.route)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ProxyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
