"""The netns driver cuts a real server in its own network namespace off, and back on.

The test builds its own world: a namespace, a veth pair with a /30 of link-local addresses
(169.254.x.y, on this pair only) and an HTTP server inside the namespace. Traffic goes only
to that address. It needs root (CAP_NET_ADMIN) and skips only when `ip netns add` is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import aiohttp
import pytest

from chaos.drivers import make_driver
from chaos.errors import DriverError, ExperimentError
from chaos.faults import Fault

AGENT = "test/orders/orders-1"
pytestmark = pytest.mark.timeout(60)


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=check)


@dataclass
class World:
    namespace: str
    host_link: str
    ns_link: str
    address: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}/"

    def settings(self) -> dict[str, object]:
        return {"agents": {"orders-1": {"namespace": self.namespace, "link": self.ns_link}}}


def _unused_subnet() -> tuple[str, str]:
    """Two addresses of a /30 in 169.254.0.0/16 that this machine uses nowhere yet."""
    taken = ip("-4", "addr").stdout + ip("-4", "route").stdout
    for _ in range(100):
        x, y = random.randint(100, 250), random.randrange(4, 252, 4)
        if f"169.254.{x}." not in taken:
            return f"169.254.{x}.{y + 1}", f"169.254.{x}.{y + 2}"
    pytest.fail("no free 169.254.x.0/24 block for the test")


def _free_port_in(namespace: str, address: str) -> int:
    out = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            namespace,
            sys.executable,
            "-c",
            f"import socket; s = socket.socket(); s.bind(({address!r}, 0)); "
            "print(s.getsockname()[1])",
        ],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    return int(out.stdout)


@pytest.fixture
def world(tmp_path) -> Iterator[World]:
    tag = secrets.token_hex(3)
    namespace, host_link, ns_link = f"agentha-t{tag}", f"aht{tag}h", f"aht{tag}n"
    try:
        added = ip("netns", "add", namespace, check=False)
    except FileNotFoundError:
        pytest.skip("iproute2 (`ip`) is not installed")
    if added.returncode != 0:
        pytest.skip(f"`ip netns add` is not permitted here: {added.stderr.strip()}")
    server = None
    try:
        host_addr, ns_addr = _unused_subnet()
        ip("link", "add", host_link, "type", "veth", "peer", "name", ns_link)
        ip("link", "set", ns_link, "netns", namespace)
        ip("addr", "add", f"{host_addr}/30", "dev", host_link)
        ip("link", "set", host_link, "up")
        ip("-n", namespace, "addr", "add", f"{ns_addr}/30", "dev", ns_link)
        ip("-n", namespace, "link", "set", ns_link, "up")
        port = _free_port_in(namespace, ns_addr)
        server = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                namespace,
                sys.executable,
                "-m",
                "http.server",
                "--bind",
                ns_addr,
                str(port),
            ],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        yield World(namespace, host_link, ns_link, ns_addr, port)
    finally:
        if server is not None:
            server.kill()
            server.wait(timeout=10)
        # Deleting the namespace deletes its veth end, and with it the host's end.
        ip("netns", "del", namespace, check=False)
        with contextlib.suppress(subprocess.SubprocessError):
            ip("link", "del", host_link, check=False)


async def answers(url: str) -> bool:
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(url, timeout=aiohttp.ClientTimeout(total=1)) as answer,
        ):
            return answer.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


async def wait_answering(url: str) -> None:
    for _ in range(50):
        if await answers(url):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url} does not answer")


async def connects(world: World, timeout_s: float = 0.5) -> bool:
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(world.address, world.port), timeout_s
        )
    except (TimeoutError, OSError):
        return False
    writer.close()
    return True


@pytest.mark.asyncio
async def test_cut_takes_the_link_down_and_revert_brings_it_back(world):
    await wait_answering(world.url)
    fault = Fault(id="t/cut", driver="netns", action="cut", agent=AGENT)
    driver = make_driver("netns", world.settings())
    assert driver.describe(fault) == (
        f"cut {AGENT}: link {world.ns_link} in {world.namespace} down (netns)"
    )
    await driver.inject(fault)
    assert "state DOWN" in ip("-n", world.namespace, "link", "show", world.ns_link).stdout
    assert not await connects(world)
    assert not await answers(world.url)
    # The host still routes the address into the dead link: nothing leaks to a default route.
    assert f"dev {world.host_link}" in ip("route", "get", world.address).stdout

    again = make_driver("netns", world.settings())  # revert from settings and fault alone
    await again.revert(fault)
    await again.revert(fault)  # idempotent
    await wait_answering(world.url)
    assert await connects(world)


@pytest.mark.asyncio
async def test_an_unknown_namespace_is_a_one_line_driver_error():
    driver = make_driver(
        "netns", {"agents": {AGENT: {"namespace": "agentha-none-such", "link": "eth0"}}}
    )
    with pytest.raises(DriverError) as caught:
        await driver.inject(Fault("f", "netns", "cut", AGENT))
    message = str(caught.value)
    assert message.startswith(f"netns: inject cut on {AGENT}: exited ")
    assert "\n" not in message


@pytest.mark.asyncio
async def test_a_hanging_ip_is_killed_at_the_timeout(tmp_path):
    slow_ip = tmp_path / "ip"
    slow_ip.write_text("#!/bin/sh\nsleep 30\n")
    slow_ip.chmod(0o755)
    driver = make_driver(
        "netns",
        {
            "ip": str(slow_ip),
            "timeout_s": 0.3,
            "agents": {"orders-1": {"namespace": "ns1", "link": "eth0"}},
        },
    )
    with pytest.raises(DriverError, match=r"revert cut on .*: timed out after 0\.3 s"):
        await driver.revert(Fault("f", "netns", "cut", AGENT))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "drivers.netns.agents: missing or empty"),
        ({"agents": {"a": {"link": "eth0"}}}, "drivers.netns.agents.a.namespace: expected"),
        (
            {"agents": {"a": {"namespace": "n", "link": "an-interface-name-too-long"}}},
            "drivers.netns.agents.a.link: expected an interface name inside the namespace",
        ),
        ({"agents": {"a": {"namespace": "n", "link": "-x"}}}, "drivers.netns.agents.a.link:"),
        (
            {"agents": {"a": {"namespace": "../etc", "link": "eth0"}}},
            "drivers.netns.agents.a.namespace: expected a network namespace name",
        ),
        (
            {"agents": {"a": {"namespace": "-all", "link": "eth0"}}},
            "drivers.netns.agents.a.namespace: expected a network namespace name",
        ),
        (
            {"agents": {"a": {"namespace": "n", "link": "e", "side": "host"}}},
            "drivers.netns.agents.a.side: unknown field",
        ),
        (
            {"agents": {"a": {"namespace": "n", "link": "e"}}, "timeout_s": 600},
            "drivers.netns.timeout_s: 600 is not valid",
        ),
    ],
)
def test_bad_settings(settings, message):
    with pytest.raises(ExperimentError) as caught:
        make_driver("netns", settings)
    assert str(caught.value).startswith(message)


def test_bad_faults():
    driver = make_driver("netns", {"agents": {"orders-1": {"namespace": "n", "link": "e"}}})
    with pytest.raises(ExperimentError, match="no action 'down'; expected one of cut"):
        driver.check_fault(Fault("f", "netns", "down", AGENT))
    with pytest.raises(ExperimentError, match="netns faults take no params"):
        driver.check_fault(Fault("f", "netns", "cut", AGENT, {"for": 3}))
    with pytest.raises(ExperimentError, match=r"drivers\.netns\.agents: no entry for 'test/x/y'"):
        driver.check_fault(Fault("f", "netns", "cut", "test/x/y"))
