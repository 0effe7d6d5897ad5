"""Broker outages: the broker is killed (SIGKILL) and restarted while an agent changes state.

Probing, the HTTP API and /metrics carry on; after the reconnect the retained states equal the
snapshot again and the events of the outage arrive once and in order, from a bounded buffer
whose overflow is counted and logged. The subscriber is durable (a persistent session at
QoS 1), as a consumer that must not miss events would be.
"""

from __future__ import annotations

import json
import logging
import time

import aiohttp
import pytest
from aio_helpers import until

from tests.mqtt.mqtt_support import matches_snapshot, monitor_server, settings, subscribed

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(90)]

AGENT = "test/orders/orders-1"


async def get(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(url) as answer:
        assert answer.status == 200
        return await answer.text()


async def settled(server, received, broker) -> None:
    store, ledger = server.monitor.store, server.monitor.ledger
    await until(lambda: all(store.group(g).status.value != "unknown" for g in store.group_ids))
    # Every agent's first TLS and plaintext audit done: no findings event can land in the
    # outage and change what the buffer holds (later audits find the same and say nothing).
    audited = lambda: all(  # noqa: E731
        {"tls", "plaintext"} <= ledger.results_for(a).keys() for a in store.agent_ids
    )
    await until(audited, within=40, what="first audits")
    # (Startup events piled up before the first connect count against the buffer too.)
    delivered = lambda: server.publisher.published + server.publisher.dropped  # noqa: E731
    await until(lambda: delivered() == store.events.last_seq, what="events delivered")
    await until(lambda: len(received.events()) == server.publisher.published)
    # The durable session must be on disk before the broker is killed.
    now = time.time()
    saved = broker.database
    await until(lambda: saved.exists() and saved.stat().st_mtime > now, what="session saved")


async def test_events_of_an_outage_arrive_in_order_and_states_are_republished(
    fleet, broker
) -> None:
    async with (
        subscribed(broker.port, "agentha/v1/m1/#", durable_id="watcher") as received,
        monitor_server(fleet, settings(broker.url)) as server,
    ):
        store, publisher = server.monitor.store, server.publisher
        await settled(server, received, broker)
        before = store.events.last_seq

        broker.kill()
        await until(lambda: not publisher.connected, what="publisher notices the outage")
        fleet.set(AGENT, stopped=True)
        await until(lambda: store.group("test/orders").status.value == "at_risk")
        # Nothing waits for the broker: the API and /metrics answer with the new state.
        snapshot = json.loads(await get(f"{server.url}/api/v1/snapshot"))
        assert snapshot["agents"][AGENT]["state"] == "down"
        assert "agentha_mqtt_connected 0.0" in await get(f"{server.url}/metrics")
        during = store.events.last_seq
        assert during >= before + 2

        broker.start()
        await until(lambda: publisher.connected, within=15, what="publisher reconnects")
        await until(lambda: len(received.events()) >= during, what="outage events delivered")
        await until(lambda: matches_snapshot(received.retained(), server.snapshot(), "m1"))
        sent = [e.to_dict() for e in store.events.since(0)]

    delivered = received.events()[: len(sent)]
    assert delivered == [{"monitor": "m1", **e} for e in sent]  # once each, in order
    assert publisher.dropped == 0


async def test_outage_buffer_overflow_is_counted_and_logged(fleet, broker, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="monitor.mqtt")
    mqtt = settings(broker.url, buffer=2)
    async with (
        subscribed(broker.port, "agentha/v1/m1/events", durable_id="watcher") as received,
        monitor_server(fleet, mqtt) as server,
    ):
        store, publisher = server.monitor.store, server.publisher
        await settled(server, received, broker)
        before, dropped_before = store.events.last_seq, publisher.dropped

        broker.kill()
        await until(lambda: not publisher.connected)
        fleet.set(AGENT, stopped=True)
        await until(lambda: store.group("test/orders").status.value == "at_risk")
        fleet.set(AGENT, stopped=False)
        await until(lambda: store.group("test/orders").status.value == "ok")
        during = store.events.last_seq
        assert during - before == 4  # down, at_risk, up, ok

        broker.start()
        await until(lambda: publisher.connected, within=15)
        await until(lambda: received.events() and received.events()[-1]["seq"] == during)
        metrics = await get(f"{server.url}/metrics")

    assert [e["seq"] for e in received.events()][-3:] == [before, during - 1, during]
    assert publisher.dropped - dropped_before == 2
    assert f"agentha_mqtt_events_dropped_total {publisher.dropped:.1f}" in metrics
    assert any("2 events dropped" in r.getMessage() for r in caplog.records)
