"""The API Gateway Agent in front of each group."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(30)]
GROUP = "prod/orders"  # four agents; orders-3 starts paused


@pytest.fixture(autouse=True)
def settled(fleet):
    """Wait until the gateway's rotation matches the reset conditions (it checks every 1 s)."""
    expected = {"prod/orders/orders-1", "prod/orders/orders-2", "prod/orders/orders-4"}
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        _, body = fleet.control("GET", "/v1/gateways")
        gateway = next(g for g in body["gateways"] if g["id"] == GROUP)
        if set(gateway["in_rotation"]) == expected or not gateway["checking"]:
            return
        time.sleep(0.1)


async def served_by(fleet, count: int) -> list[str]:
    url = f"{fleet.gateways[GROUP]['url']}/api/orders/1"
    key = {"X-Api-Key": fleet.secrets["FLEETSIM_PROD_API_KEY"]}
    agents = []
    for _ in range(count):
        status, headers, _ = await fleet.fetch(url, headers=key)
        assert status == 200
        agents.append(headers["X-Fleetsim-Agent"])
    return agents


async def test_round_robin_over_running_agents_skipping_the_paused_one(fleet):
    agents = await served_by(fleet, 6)
    assert set(agents) == {"prod/orders/orders-1", "prod/orders/orders-2", "prod/orders/orders-4"}
    assert all(a != b for a, b in itertools.pairwise(agents))


async def test_skips_an_agent_paused_at_run_time(fleet):
    await served_by(fleet, 1)  # the gateway is in use: it health-checks every second
    fleet.set("prod/orders/orders-1", paused=True)
    await asyncio.sleep(1.5)
    assert "prod/orders/orders-1" not in await served_by(fleet, 6)


async def test_skips_a_stopped_agent_at_once(fleet):
    fleet.set("prod/orders/orders-2", stopped=True)
    agents = await served_by(fleet, 6)  # connection refused: the next agent takes the call
    assert set(agents) == {"prod/orders/orders-1", "prod/orders/orders-4"}


async def test_503_when_no_agent_is_available(fleet):
    for name in ("orders-1", "orders-2", "orders-4"):
        fleet.set(f"prod/orders/{name}", stopped=True)
    url = f"{fleet.gateways[GROUP]['url']}/api/orders"
    key = {"X-Api-Key": fleet.secrets["FLEETSIM_PROD_API_KEY"]}
    assert (await fleet.fetch(url, headers=key))[0] == 503


async def test_token_endpoint_through_the_gateway(fleet):
    base = fleet.gateways["test/orders"]["url"]
    form = {
        "grant_type": "client_credentials",
        "client_id": "fleetsim-test",
        "client_secret": fleet.secrets["FLEETSIM_TEST_CLIENT_SECRET"],
    }
    status, _, body = await fleet.fetch(f"{base}/oauth/token", "POST", data=form)
    assert status == 200
    assert "access_token" in body
