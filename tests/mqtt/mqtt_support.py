"""Shared pieces of the MQTT tests: monitors publishing to a real broker, a subscriber, a PKI.

Monitors run in the test's event loop on the session's simulated fleet.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from monitor.inventory import load_inventory
from monitor.mqtt import MqttSettings, mqtt_settings
from monitor.serve import Listen, MonitorServer
from monitor.service import MonitorSettings, ProbeTiming
from monitor.shard import Shard

FAST = MonitorSettings(
    timings={
        "status": ProbeTiming(interval=0.3, timeout=1.0, fast_interval=0.1),
        "tls": ProbeTiming(interval=30, timeout=2.0),
        "plaintext": ProbeTiming(interval=30, timeout=2.0),
    },
    rise=1,
    fall=2,
)


def settings(url: str, monitor_id: str = "m1", **options) -> MqttSettings:
    return mqtt_settings(url, monitor_id, insecure=url.startswith("mqtt:"), **options)


@contextlib.asynccontextmanager
async def monitor_server(
    fleet,
    mqtt: MqttSettings,
    *,
    inventory_path: Path | None = None,
    shard: Shard | None = None,
) -> AsyncIterator[MonitorServer]:
    inventory = load_inventory(inventory_path or fleet.directory / "inventory.yaml", fleet.secrets)
    server = MonitorServer(inventory, Listen("127.0.0.1", 0), FAST, mqtt=mqtt, shard=shard)
    async with server:
        yield server


@dataclass
class Received:
    """Messages one subscriber got: (topic, payload, retain flag), in arrival order."""

    messages: list[tuple[str, bytes, bool]] = field(default_factory=list)

    def retained(self) -> dict[str, dict]:
        """The latest state per topic (an empty payload clears it), as the broker keeps them."""
        latest: dict[str, bytes] = {}
        for topic, payload, _retain in self.messages:
            if not topic.endswith(("/events", "/presence")):
                latest[topic] = payload
        return {t: json.loads(p) for t, p in latest.items() if p}

    def events(self) -> list[dict]:
        return [json.loads(p) for t, p, _r in self.messages if t.endswith("/events")]

    def presence(self, monitor_id: str) -> dict | None:
        found = [p for t, p, _r in self.messages if t == f"agentha/v1/{monitor_id}/presence"]
        return json.loads(found[-1]) if found else None


@contextlib.asynccontextmanager
async def subscribed(
    port: int, topic_filter: str = "agentha/#", *, durable_id: str | None = None
) -> AsyncIterator[Received]:
    """Follow ``topic_filter``; with ``durable_id`` as a persistent session that outlives a
    broker restart and gets what was published while it was away (QoS 1)."""
    received = Received()

    async def follow() -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1",
                    port,
                    identifier=durable_id,
                    clean_session=durable_id is None,
                    keepalive=5,
                    timeout=2,
                ) as client:
                    await client.subscribe(topic_filter, qos=1)
                    ready.set()
                    async for message in client.messages:
                        payload = message.payload if isinstance(message.payload, bytes) else b""
                        received.messages.append((str(message.topic), payload, message.retain))
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)

    ready = asyncio.Event()
    task = asyncio.create_task(follow())
    try:
        await asyncio.wait_for(ready.wait(), 10)
        yield received
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@dataclass(frozen=True)
class BrokerPki:
    ca: Path
    cert: Path
    key: Path


def make_pki(folder: Path) -> BrokerPki:
    """A CA and a broker certificate for 127.0.0.1, valid for a day."""
    now = datetime.datetime.now(datetime.UTC)

    def build(subject: str, key, issuer_name, issuer_key, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
            builder = builder.add_extension(san, critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    folder.mkdir(parents=True, exist_ok=True)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "agentha test broker CA")])
    ca_cert = build("agentha test broker CA", ca_key, ca_name, ca_key, ca=True)
    cert = build("127.0.0.1", key, ca_name, ca_key, ca=False)
    pki = BrokerPki(folder / "ca.pem", folder / "broker.pem", folder / "broker.key")
    pki.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    pki.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pki.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return pki


AGENT_FIELDS = ("state", "reason", "since", "findings")
GROUP_FIELDS = ("status", "reason", "since", "healthy", "required", "total", "redundancy")


def matches_snapshot(retained: dict[str, dict], snapshot: dict, monitor_id: str) -> bool:
    for agent_id, entry in snapshot["agents"].items():
        got = retained.get(f"agentha/v1/{monitor_id}/agents/{agent_id}")
        if got is None or any(got[k] != entry[k] for k in AGENT_FIELDS):
            return False
    for group_id, entry in snapshot["groups"].items():
        got = retained.get(f"agentha/v1/{monitor_id}/groups/{group_id}")
        if got is None or any(got[k] != entry[k] for k in GROUP_FIELDS):
            return False
    expected = len(snapshot["agents"]) + len(snapshot["groups"])
    return len([t for t in retained if t.startswith(f"agentha/v1/{monitor_id}/")]) == expected
