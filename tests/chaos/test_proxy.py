"""The fault proxy: every toxic measured on real TCP, in-process and as a subprocess.

In-process tests put the proxy in front of a tiny asyncio echo server; the subprocess test
puts ``python -m chaos.proxy`` in front of a fleetsim agent, TLS passing through untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from echo_server import echo

from chaos.proxy import FaultProxy, Route, parse_route, serve_proxy
from chaos.proxy_toxics import parse_toxic

pytestmark = pytest.mark.timeout(60)
ROUTE = "echo"


@contextlib.asynccontextmanager
async def server(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[tuple[str, int]]:
    srv = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield srv.sockets[0].getsockname()[:2]
    finally:
        srv.close()


class Harness:
    """A proxy route in front of an upstream, and a client for its control API."""

    def __init__(self, proxy: FaultProxy, session: aiohttp.ClientSession) -> None:
        self.proxy = proxy
        self.session = session

    @property
    def listen(self) -> tuple[str, int]:
        return self.proxy.routes[ROUTE].listen

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.session.request(
            method, self.proxy.control_url + path, json=body, timeout=aiohttp.ClientTimeout(5)
        ) as answer:
            return answer.status, await answer.json()

    async def toxic(
        self, type_: str, direction: str = "downstream", toxicity: float = 1.0, **attributes: int
    ) -> dict[str, Any]:
        status, body = await self.call(
            "POST",
            f"/routes/{ROUTE}/toxics",
            {"type": type_, "direction": direction, "toxicity": toxicity, "attributes": attributes},
        )
        assert status == 201, body
        return body

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(*self.listen)

    async def round_trip(self, payload: bytes = b"ping\n") -> float:
        """Seconds for one echo on a new connection."""
        reader, writer = await self.connect()
        try:
            return await timed_echo(reader, writer, payload)
        finally:
            writer.close()


async def timed_echo(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes = b"ping\n"
) -> float:
    started = time.monotonic()
    writer.write(payload)
    await writer.drain()
    assert await asyncio.wait_for(reader.readexactly(len(payload)), 10) == payload
    return time.monotonic() - started


@contextlib.asynccontextmanager
async def harness_for(upstream: tuple[str, int]) -> AsyncIterator[Harness]:
    route = Route(ROUTE, ("127.0.0.1", 0), upstream)
    async with FaultProxy(("127.0.0.1", 0), [route]) as proxy, aiohttp.ClientSession() as session:
        yield Harness(proxy, session)


@pytest_asyncio.fixture
async def harness() -> AsyncIterator[Harness]:
    async with server(echo) as upstream, harness_for(upstream) as h:
        yield h


# --- parsing -------------------------------------------------------------------------------


def test_parse_route() -> None:
    route = parse_route("orders-1=127.0.0.1:0,127.0.0.5:8443")
    assert route == Route("orders-1", ("127.0.0.1", 0), ("127.0.0.5", 8443))
    assert parse_route("v6=[::1]:9000,[::1]:9001").listen == ("::1", 9000)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("orders-1", "expected NAME=LISTEN_HOST:PORT,UPSTREAM_HOST:PORT"),
        ("bad name=127.0.0.1:1,127.0.0.1:2", "name must be"),
        ("a=127.0.0.1:1", "route a: expected LISTEN_HOST:PORT,UPSTREAM_HOST:PORT"),
        ("a=127.0.0.1:x,127.0.0.1:2", "route a listen: port must be a number"),
        ("a=127.0.0.1:1,127.0.0.1:0", "route a upstream: port out of range: 0"),
        ("a=127.0.0.1:1,nohost", "route a upstream: expected HOST:PORT"),
    ],
)
def test_parse_route_errors_are_one_line(text: str, expected: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_route(text)
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ([], "body: expected a JSON object"),
        ({"type": "lag"}, "type: expected one of"),
        ({"type": "latency", "direction": "up"}, "direction: expected upstream or downstream"),
        ({"type": "latency", "toxicity": 1.5, "attributes": {"latency_ms": 1}}, "toxicity"),
        ({"type": "latency", "attributes": {}}, "attributes.latency_ms: required"),
        ({"type": "latency", "attributes": {"latency_ms": -1}}, "attributes.latency_ms"),
        ({"type": "latency", "attributes": {"latency": 5}}, "not an attribute of latency"),
        ({"type": "bandwidth", "attributes": {"rate_kbps": 0}}, "at least 1"),
        (
            {"type": "slicer", "attributes": {"average_size": 4, "size_variation": 4}},
            "size_variation: expected less than average_size",
        ),
        ({"type": "timeout", "name": "a/b"}, "name: expected"),
        ({"type": "timeout", "colour": "red"}, "unknown field 'colour'"),
    ],
)
def test_bad_toxics_are_refused_in_one_line(body: Any, expected: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_toxic(body)
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_toxic_defaults() -> None:
    toxic = parse_toxic({"type": "timeout"})
    assert toxic.to_json() == {
        "name": "timeout_downstream",
        "type": "timeout",
        "direction": "downstream",
        "toxicity": 1.0,
        "attributes": {"timeout_ms": 0},
    }


# --- passing through and the control API ---------------------------------------------------


@pytest.mark.asyncio
async def test_passes_bytes_through_and_counts_connections(harness: Harness) -> None:
    reader, writer = await harness.connect()
    payload = os.urandom(300_000)
    writer.write(payload)
    assert await asyncio.wait_for(reader.readexactly(len(payload)), 5) == payload
    status, body = await harness.call("GET", "/routes")
    assert status == 200
    [route] = body["routes"]
    assert route["name"] == ROUTE
    assert route["enabled"] is True
    assert route["connections"] == 1
    assert route["listen"] == f"127.0.0.1:{harness.listen[1]}"
    writer.close()
    await writer.wait_closed()
    for _ in range(50):
        if (await harness.call("GET", f"/routes/{ROUTE}"))[1]["connections"] == 0:
            break
        await asyncio.sleep(0.02)
    assert (await harness.call("GET", f"/routes/{ROUTE}"))[1]["connections"] == 0


@pytest.mark.asyncio
async def test_control_api_errors_are_json_one_line(harness: Harness) -> None:
    url = harness.proxy.control_url
    async with harness.session.post(f"{url}/routes/{ROUTE}/toxics", data=b"{nope") as answer:
        assert answer.status == 400
        assert await answer.json() == {"error": "body: not valid JSON"}
    status, body = await harness.call("POST", f"/routes/{ROUTE}/toxics", {"type": "lag"})
    assert status == 400
    assert body["error"].startswith("type: expected one of")
    status, body = await harness.call("POST", "/routes/nope/toxics", {"type": "timeout"})
    assert (status, body) == (404, {"error": "no route 'nope'"})
    await harness.toxic("timeout")
    status, body = await harness.call("POST", f"/routes/{ROUTE}/toxics", {"type": "timeout"})
    assert status == 409
    assert "exists already" in body["error"]
    status, body = await harness.call("DELETE", f"/routes/{ROUTE}/toxics/missing")
    assert status == 404
    assert body == {"error": f"route {ROUTE}: no toxic 'missing'"}
    status, body = await harness.call("PATCH", f"/routes/{ROUTE}", {"enabled": "no"})
    assert status == 400
    assert body["error"].startswith("enabled: expected true or false")
    status, body = await harness.call("GET", "/nothing/here")
    assert status == 404
    assert "\n" not in body["error"]
    await harness.toxic("latency", latency_ms=5)
    status, body = await harness.call("DELETE", f"/routes/{ROUTE}/toxics")
    assert (status, body) == (200, {"deleted": ["timeout_downstream", "latency_downstream"]})
    assert (await harness.call("GET", f"/routes/{ROUTE}/toxics"))[1] == {"toxics": []}


# --- toxics --------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_latency_adds_its_delay_and_goes_away(harness: Harness) -> None:
    baseline = await harness.round_trip()
    assert baseline < 0.2
    await harness.toxic("latency", latency_ms=300, jitter_ms=50)
    delayed = await harness.round_trip()
    assert delayed >= 0.25
    assert delayed < 2
    await harness.call("DELETE", f"/routes/{ROUTE}/toxics/latency_downstream")
    assert await harness.round_trip() < 0.2


@pytest.mark.asyncio
async def test_toxics_change_connections_already_open(harness: Harness) -> None:
    reader, writer = await harness.connect()
    assert await timed_echo(reader, writer) < 0.2
    await harness.toxic("latency", direction="upstream", latency_ms=300)
    assert await timed_echo(reader, writer) >= 0.3
    await harness.call("DELETE", f"/routes/{ROUTE}/toxics/latency_upstream")
    assert await timed_echo(reader, writer) < 0.2
    writer.close()


@pytest.mark.asyncio
async def test_bandwidth_bounds_throughput(harness: Harness) -> None:
    payload = os.urandom(100_000)
    assert await harness.round_trip(payload) < 0.5
    await harness.toxic("bandwidth", rate_kbps=100)  # 100 KB/s downstream
    elapsed = await harness.round_trip(payload)
    # The first tenth of a second's worth goes at once; the other 90 KB take >= 0.9 s.
    assert elapsed >= 0.85
    assert elapsed < 3


@pytest.mark.asyncio
async def test_blackhole_stops_data_but_keeps_the_connection(harness: Harness) -> None:
    reader, writer = await harness.connect()
    await harness.toxic("timeout", timeout_ms=0)
    writer.write(b"held\n")
    await writer.drain()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.readexactly(5), 0.7)
    assert (await harness.call("GET", f"/routes/{ROUTE}"))[1]["connections"] == 1
    # Removing the toxic lets the held data through: nothing was dropped.
    await harness.call("DELETE", f"/routes/{ROUTE}/toxics/timeout_downstream")
    assert await asyncio.wait_for(reader.readexactly(5), 2) == b"held\n"
    writer.close()


@pytest.mark.asyncio
async def test_timeout_closes_the_connection_after_its_time(harness: Harness) -> None:
    reader, writer = await harness.connect()
    await harness.toxic("timeout", timeout_ms=400)
    started = time.monotonic()
    writer.write(b"lost\n")
    assert await asyncio.wait_for(reader.read(100), 3) == b""
    assert time.monotonic() - started >= 0.35
    writer.close()


@pytest.mark.asyncio
async def test_reset_peer_resets_the_connection(harness: Harness) -> None:
    await harness.toxic("reset_peer", direction="upstream")
    reader, writer = await harness.connect()
    writer.write(b"hello\n")
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(100), 3)
    writer.close()


@pytest.mark.asyncio
async def test_down_closes_and_refuses_then_comes_back(harness: Harness) -> None:
    reader, writer = await harness.connect()
    assert await timed_echo(reader, writer) < 0.5
    status, body = await harness.call("PATCH", f"/routes/{ROUTE}", {"enabled": False})
    assert status == 200
    assert body["enabled"] is False
    assert body["connections"] == 0
    with contextlib.suppress(ConnectionError):
        assert await asyncio.wait_for(reader.read(100), 2) == b""
    with pytest.raises(ConnectionRefusedError):
        await harness.connect()
    status, body = await harness.call("PATCH", f"/routes/{ROUTE}", {"enabled": True})
    assert (status, body["enabled"]) == (200, True)
    assert await harness.round_trip() < 0.5


async def delayed_connections(harness: Harness, count: int) -> int:
    """How many of ``count`` new connections a 300 ms latency toxic slowed down."""
    times = await asyncio.gather(*(harness.round_trip() for _ in range(count)))
    return sum(t >= 0.25 for t in times)


@pytest.mark.asyncio
async def test_toxicity_decides_per_connection(harness: Harness) -> None:
    await harness.toxic("latency", toxicity=0.0, latency_ms=300)
    assert await delayed_connections(harness, 20) == 0
    await harness.call("DELETE", f"/routes/{ROUTE}/toxics")
    await harness.toxic("latency", toxicity=1.0, latency_ms=300)
    assert await delayed_connections(harness, 20) == 20
    await harness.call("DELETE", f"/routes/{ROUTE}/toxics")
    await harness.toxic("latency", toxicity=0.5, latency_ms=300)
    # Binomial(40, 0.5) falls outside 6..34 about once in a million runs.
    assert 6 <= await delayed_connections(harness, 40) <= 34


@pytest.mark.asyncio
async def test_slicer_delivers_every_byte_in_small_pieces(harness: Harness) -> None:
    await harness.toxic("slicer", average_size=20, size_variation=10, delay_us=2000)
    payload = os.urandom(2000)
    reader, writer = await harness.connect()
    writer.write(payload)
    got = bytearray()
    reads = 0
    while len(got) < len(payload):
        piece = await asyncio.wait_for(reader.read(65536), 2)
        assert piece
        got += piece
        reads += 1
    assert bytes(got) == payload
    # 2,000 bytes in pieces of 10-30 bytes, 2 ms apart: at least 67 pieces, a few may merge.
    assert reads >= 30
    writer.close()


@pytest.mark.asyncio
async def test_slow_close_delays_the_close() -> None:
    async def say_bye(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"bye\n")
        await writer.drain()
        writer.close()

    async with server(say_bye) as upstream, harness_for(upstream) as harness:
        reader, writer = await harness.connect()
        assert await asyncio.wait_for(reader.readexactly(4), 2) == b"bye\n"
        assert await asyncio.wait_for(reader.read(10), 2) == b""
        writer.close()
        await harness.toxic("slow_close", delay_ms=500)
        reader, writer = await harness.connect()
        assert await asyncio.wait_for(reader.readexactly(4), 2) == b"bye\n"
        started = time.monotonic()
        assert await asyncio.wait_for(reader.read(10), 3) == b""
        assert time.monotonic() - started >= 0.4
        writer.close()


@pytest.mark.asyncio
async def test_memory_is_bounded_when_the_client_does_not_read() -> None:
    sent = 0

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        block = b"x" * 65536
        with contextlib.suppress(ConnectionError):
            while True:
                writer.write(block)
                await writer.drain()
                sent += len(block)

    async with server(flood) as upstream, harness_for(upstream) as harness:
        reader, writer = await harness.connect()
        client = reader._transport.get_extra_info("socket")  # type: ignore[attr-defined]
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        await asyncio.sleep(1.0)
        first = sent
        await asyncio.sleep(0.5)
        # Backpressure reaches the upstream: it stopped being able to send.
        assert sent == first
        # What sits in kernel buffers is the kernel's; the proxy holds little of its own.
        [connection] = harness.proxy.routes[ROUTE].connections
        assert connection.client[1].transport.get_write_buffer_size() <= 256 * 1024
        assert connection.upstream is not None
        assert len(connection.upstream[0]._buffer) <= 256 * 1024  # type: ignore[attr-defined]
        writer.close()


# --- as a subprocess in front of a fleetsim agent ------------------------------------------

AGENT = "test/orders/orders-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def status_through(fleet: Any, port: int, host: str) -> tuple[int, float]:
    started = time.monotonic()
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=fleet.ssl_context(), server_hostname=host
    )
    try:
        writer.write(
            f"GET /frendsstatusinfo HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
        )
        line = await asyncio.wait_for(reader.readline(), 5)
        return int(line.split()[1]), time.monotonic() - started
    finally:
        writer.close()


@pytest.mark.asyncio
async def test_subprocess_proxies_tls_to_an_agent_and_stops_on_sigterm(fleet: Any) -> None:
    agent = fleet.agents[AGENT]
    host = agent["address"]
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chaos.proxy", "--control", "127.0.0.1:0",
        "--route", f"orders-1=127.0.0.1:{port},{host}:{agent['port']}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        ready = json.loads(await asyncio.wait_for(proc.stdout.readline(), 20))
        assert ready["routes"] == {"orders-1": f"127.0.0.1:{port}"}
        status, baseline = await status_through(fleet, port, host)
        assert status == 200
        async with aiohttp.ClientSession() as session:
            body = {"name": "slow", "type": "latency", "attributes": {"latency_ms": 400}}
            url = ready["control_url"] + "/routes/orders-1/toxics"
            async with session.post(url, json=body) as answer:
                assert answer.status == 201
            status, delayed = await status_through(fleet, port, host)
            assert status == 200
            # The handshake and the answer both cross the toxic: at least two delays.
            assert delayed >= baseline + 0.7
            async with session.patch(
                ready["control_url"] + "/routes/orders-1", json={"enabled": False}
            ) as answer:
                assert answer.status == 200
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 10)
        assert proc.returncode == 0
        assert b"Traceback" not in err
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_subprocess_bad_route_is_a_one_line_error() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "chaos.proxy",
            "--control",
            "127.0.0.1:0",
            "--route",
            "orders-1=127.0.0.1:1",
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode == 2
    assert done.stderr == ("error: route orders-1: expected LISTEN_HOST:PORT,UPSTREAM_HOST:PORT\n")


def test_subprocess_port_in_use_is_a_one_line_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "chaos.proxy",
                "--control",
                "127.0.0.1:0",
                "--route",
                f"a=127.0.0.1:{port},127.0.0.1:9",
            ],
            capture_output=True,
            text=True,
            timeout=20,
        )
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: route a: cannot listen on 127.0.0.1:{port}: ")
    assert done.stderr.count("\n") == 1


@pytest.mark.asyncio
async def test_serve_proxy_signals_ready_and_stops_when_cancelled() -> None:
    port = free_port()
    ready = asyncio.Event()
    async with server(echo) as upstream:
        task = asyncio.create_task(
            serve_proxy(("127.0.0.1", 0), [Route("a", ("127.0.0.1", port), upstream)], ready.set)
        )
        await asyncio.wait_for(ready.wait(), 5)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"hi\n")
        assert await asyncio.wait_for(reader.readexactly(3), 2) == b"hi\n"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await asyncio.wait_for(reader.read(10), 2) == b""
        writer.close()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)
