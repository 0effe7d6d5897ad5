"""What a monitor publishes to a real Mosquitto: retained states equal to its snapshot, payloads
valid against the shipped schemas, every event once and in order, and no secret anywhere."""

from __future__ import annotations

import json

import jsonschema
import pytest
from aio_helpers import until

from monitor import mqtt_payloads
from monitor.mqtt_topics import parse
from tests.mqtt.mqtt_support import matches_snapshot, monitor_server, settings, subscribed

pytestmark = pytest.mark.timeout(60)

AGENT = "test/orders/orders-1"


@pytest.mark.asyncio
async def test_retained_states_events_and_schemas(fleet, broker) -> None:
    async with (
        subscribed(broker.port) as received,
        monitor_server(fleet, settings(broker.url)) as server,
    ):
        store = server.monitor.store
        await until(lambda: all(store.group(g).status.value != "unknown" for g in store.group_ids))
        fleet.set(AGENT, stopped=True)
        await until(lambda: store.agent(AGENT).state.value == "down", what="agent down")
        await until(
            lambda: matches_snapshot(received.retained(), server.snapshot(), "m1"),
            what=lambda: (
                f"retained topics equal to the snapshot ({received.retained()} vs "
                f"{server.snapshot()}; connected {server.publisher.connected}, "
                f"error {server.publisher.last_error})"
            ),
        )
        events = [e.to_dict() for e in store.events.since(0)]
        await until(lambda: len(received.events()) >= len(events), what="every event delivered")
        assert received.presence("m1")["status"] == "online"

    # Every event once, in order, as the monitor's own log has them.
    assert received.events()[: len(events)] == [{"monitor": "m1", **e} for e in events]
    assert [e["seq"] for e in received.events()] == list(range(1, len(received.events()) + 1))
    # Leaving cleanly says offline (the last will covers the other ways of leaving).
    assert received.presence("m1")["status"] == "offline"

    validators = {
        name: jsonschema.Draft202012Validator(mqtt_payloads.schema(name))
        for name in mqtt_payloads.SCHEMAS
    }
    kinds = {"agents": "agent", "groups": "group", "events": "event", "presence": "presence"}
    for topic, payload, _retain in received.messages:
        parsed = parse(topic)
        assert parsed is not None, topic
        instance = json.loads(payload)
        validators[kinds[parsed[1]]].validate(instance)

    # The fleet's secrets (health-check keys, API keys, client secrets) are canaries.
    everything = b"\n".join(payload for _t, payload, _r in received.messages)
    assert fleet.secrets and all(v.encode() not in everything for v in fleet.secrets.values())


def test_schemas_are_valid_json_schemas() -> None:
    for name in mqtt_payloads.SCHEMAS:
        jsonschema.Draft202012Validator.check_schema(mqtt_payloads.schema(name))
