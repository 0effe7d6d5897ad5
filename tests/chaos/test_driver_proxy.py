"""The proxy driver against a real fault proxy: inject, revert (from another instance too),
the errors of a bad plan, and a control API that is down or silent."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from echo_server import echo

from chaos.drivers.proxy import ProxyDriver, toxic_name
from chaos.errors import DriverError, ExperimentError
from chaos.faults import Fault
from chaos.proxy import FaultProxy, Route

pytestmark = pytest.mark.timeout(60)
AGENT = "test/orders/orders-1"
ROUTE = "orders-1"  # the agent's name: the driver's default route


class Rig:
    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        self.settings = {"control_url": proxy.control_url, "timeout_s": 5}

    @property
    def listen(self) -> tuple[str, int]:
        return self.proxy.routes[ROUTE].listen

    def toxics(self) -> list[dict[str, Any]]:
        return [t.to_json() for t in self.proxy.routes[ROUTE].toxics.values()]

    async def round_trip(self) -> float:
        reader, writer = await asyncio.open_connection(*self.listen)
        try:
            started = time.monotonic()
            writer.write(b"ping\n")
            assert await asyncio.wait_for(reader.readexactly(5), 5) == b"ping\n"
            return time.monotonic() - started
        finally:
            writer.close()


@pytest_asyncio.fixture
async def rig() -> AsyncIterator[Rig]:
    upstream = await asyncio.start_server(echo, "127.0.0.1", 0)
    route = Route(ROUTE, ("127.0.0.1", 0), upstream.sockets[0].getsockname()[:2])
    try:
        async with FaultProxy(("127.0.0.1", 0), [route]) as proxy:
            yield Rig(proxy)
    finally:
        upstream.close()


def fault(action: str, fault_id: str = "step-1/orders-1", **params: Any) -> Fault:
    return Fault(id=fault_id, driver="proxy", action=action, agent=AGENT, params=params)


@contextlib.asynccontextmanager
async def driver(settings: dict[str, Any]) -> AsyncIterator[ProxyDriver]:
    d = ProxyDriver(settings)
    try:
        yield d
    finally:
        await d.close()


# --- settings and plans --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"control_url": "http://127.0.0.1:1", "port": 1}, "drivers.proxy.port: unknown field"),
        ({"control_url": "ftp://x"}, "drivers.proxy.control_url: 'ftp://x' is not valid"),
        ({}, "drivers.proxy.control_url: None is not valid"),
        ({"control_url": "http://h:1", "timeout_s": 0}, "drivers.proxy.timeout_s: 0 is not valid"),
        ({"control_url": "http://h:1", "routes": ["a"]}, "drivers.proxy.routes: expected a"),
        ({"control_url": "http://h:1", "routes": {"a": "b c"}}, "drivers.proxy.routes.a: 'b c'"),
    ],
)
def test_bad_settings_are_one_line_errors(settings: dict[str, Any], expected: str) -> None:
    with pytest.raises(ExperimentError) as caught:
        ProxyDriver(settings)
    assert str(caught.value).startswith(expected)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("action", "params", "expected"),
    [
        ("jam", {}, "driver proxy: no action 'jam'"),
        ("latency", {}, "fault f: params.ms: missing"),
        ("latency", {"ms": 10, "colour": 1}, "fault f: params.colour: unknown for latency"),
        ("latency", {"ms": -5}, "fault f: params.ms: -5; expected a whole number 1..600000"),
        ("bandwidth", {"kbps": 1.5}, "fault f: params.kbps: 1.5"),
        ("blackhole", {"toxicity": 2}, "fault f: params.toxicity: 2; expected 0..1"),
        ("reset", {"direction": "sideways"}, "fault f: params.direction: 'sideways'"),
        ("down", {"toxicity": 0.5}, "fault f: params.toxicity: unknown for down"),
        ("slicer", {"average_size": 5, "size_variation": 5}, "fault f: params.size_variation"),
    ],
)
def test_bad_faults_are_one_line_errors(action: str, params: dict[str, Any], expected: str) -> None:
    d = ProxyDriver({"control_url": "http://127.0.0.1:1"})
    with pytest.raises(ExperimentError) as caught:
        d.check_fault(fault(action, "f", **params))
    assert str(caught.value).startswith(expected)
    assert "\n" not in str(caught.value)


def test_toxic_names_are_stable_valid_and_distinct() -> None:
    first = toxic_name(fault("latency", "step-2/orders-1"))
    assert first == toxic_name(fault("blackhole", "step-2/orders-1"))  # from the id alone
    assert first.startswith("agentha-step-2-orders-1-")
    assert first != toxic_name(fault("latency", "step-2-orders-1"))
    long = toxic_name(fault("latency", "x" * 200 + "/ü"))
    assert len(long) <= 64
    assert long.startswith("agentha-xxx")


def test_routes_map_ids_and_names() -> None:
    d = ProxyDriver({
        "control_url": "http://127.0.0.1:1",
        "routes": {"prod/orders/orders-1": "p1", "orders-2": "second"},
    })  # fmt: skip
    assert d.route_of("prod/orders/orders-1") == "p1"
    assert d.route_of("test/orders/orders-1") == "orders-1"
    assert d.route_of("test/orders/orders-2") == "second"
    assert "proxy route p1" in d.describe(
        Fault("f", "proxy", "latency", "prod/orders/orders-1", {"ms": 200, "jitter_ms": 20})
    )


# --- inject and revert ---------------------------------------------------------------------


@pytest.mark.asyncio
async def test_latency_injected_and_reverted_from_a_new_driver(rig: Rig) -> None:
    assert await rig.round_trip() < 0.2
    latency = fault("latency", ms=300, jitter_ms=20)
    async with driver(rig.settings) as first:
        await first.inject(latency)
    [toxic] = rig.toxics()
    assert toxic == {
        "name": toxic_name(latency), "type": "latency", "direction": "downstream",
        "toxicity": 1.0, "attributes": {"latency_ms": 300, "jitter_ms": 20},
    }  # fmt: skip
    assert await rig.round_trip() >= 0.28
    # As `agentha chaos recover` does: a new driver from the same settings and fault.
    async with driver(rig.settings) as second:
        await second.revert(latency)
        assert rig.toxics() == []
        assert await rig.round_trip() < 0.2
        await second.revert(latency)  # idempotent: gone already is fine


@pytest.mark.asyncio
async def test_inject_again_replaces_the_toxic(rig: Rig) -> None:
    async with driver(rig.settings) as d:
        await d.inject(fault("latency", ms=100))
        await d.inject(fault("latency", ms=250, toxicity=0.5, direction="upstream"))
        [toxic] = rig.toxics()
        assert toxic["attributes"]["latency_ms"] == 250
        assert (toxic["toxicity"], toxic["direction"]) == (0.5, "upstream")


@pytest.mark.asyncio
async def test_down_refuses_connects_until_reverted(rig: Rig) -> None:
    down = fault("down")
    async with driver(rig.settings) as d:
        await d.inject(down)
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(*rig.listen)
        await d.revert(down)
        assert await rig.round_trip() < 0.5
        await d.revert(down)


@pytest.mark.asyncio
async def test_blackhole_and_reset(rig: Rig) -> None:
    blackhole = fault("blackhole", "hole")
    async with driver(rig.settings) as d:
        await d.inject(blackhole)
        reader, writer = await asyncio.open_connection(*rig.listen)
        writer.write(b"ping\n")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.readexactly(5), 0.5)
        await d.revert(blackhole)
        assert await asyncio.wait_for(reader.readexactly(5), 2) == b"ping\n"
        writer.close()
        reset = fault("reset", "rst", direction="upstream")
        await d.inject(reset)
        reader, writer = await asyncio.open_connection(*rig.listen)
        writer.write(b"ping\n")
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(10), 2)
        writer.close()
        await d.revert(reset)
        assert await rig.round_trip() < 0.5


@pytest.mark.asyncio
async def test_a_missing_route_is_a_driver_error(rig: Rig) -> None:
    settings = {**rig.settings, "routes": {"orders-1": "elsewhere"}}
    async with driver(settings) as d:
        for step in (d.inject, d.revert):
            with pytest.raises(DriverError) as caught:
                await step(fault("latency", ms=10))
            assert str(caught.value).endswith("control API answered 404: no route 'elsewhere'")


@pytest.mark.asyncio
async def test_unreachable_control_api_is_a_one_line_error() -> None:
    listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    listener.close()
    await listener.wait_closed()
    async with driver({"control_url": f"http://127.0.0.1:{port}", "timeout_s": 1}) as d:
        with pytest.raises(DriverError) as caught:
            await d.inject(fault("latency", ms=10))
    message = str(caught.value)
    assert message.startswith(
        f"proxy: inject latency on {AGENT} (route orders-1): cannot reach http://127.0.0.1:{port}"
    )
    assert "\n" not in message


@pytest.mark.asyncio
async def test_silent_control_api_times_out_within_the_timeout() -> None:
    held: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accept, read nothing, answer nothing

    listener = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        async with driver({"control_url": f"http://127.0.0.1:{port}", "timeout_s": 0.5}) as d:
            started = time.monotonic()
            with pytest.raises(DriverError) as caught:
                await d.revert(fault("down"))
            assert time.monotonic() - started < 2
        assert str(caught.value) == (
            f"proxy: revert down on {AGENT} (route orders-1): no answer from "
            f"http://127.0.0.1:{port} within 0.5 s"
        )
    finally:
        for writer in held:
            writer.close()
        listener.close()


# --- in front of a fleetsim agent ----------------------------------------------------------


async def status_time(fleet: Any, port: int, host: str) -> float:
    connector = aiohttp.TCPConnector(ssl=fleet.ssl_context(), force_close=True)
    started = time.monotonic()
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(
            f"https://127.0.0.1:{port}/frendsstatusinfo",
            server_hostname=host,
            timeout=aiohttp.ClientTimeout(total=10),
        ) as answer,
    ):
        assert answer.status == 200
    return time.monotonic() - started


@pytest.mark.asyncio
async def test_latency_on_a_fleetsim_agent(fleet: Any) -> None:
    agent = fleet.agents[AGENT]
    route = Route(ROUTE, ("127.0.0.1", 0), (agent["address"], agent["port"]))
    async with FaultProxy(("127.0.0.1", 0), [route]) as proxy:
        port = proxy.routes[ROUTE].listen[1]
        baseline = await status_time(fleet, port, agent["address"])
        latency = fault("latency", ms=300)
        async with driver({"control_url": proxy.control_url}) as d:
            await d.inject(latency)
            assert await status_time(fleet, port, agent["address"]) >= baseline + 0.5
            await d.revert(latency)
            assert await status_time(fleet, port, agent["address"]) < baseline + 0.25
