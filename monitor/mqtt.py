"""The MQTT publisher: retained agent and group states, the event stream and presence.

A sink like the HTTP API: it reads the StateStore and its EventLog and never feeds back. One
long-lived aiomqtt client; when the broker goes away, probing carries on and the publisher
reconnects with backoff and jitter. On every (re)connect it publishes all retained states
again and then the events it has not delivered yet, in order, as far as its bounded outage
buffer holds them (``dropped`` counts the rest, and a log line says how many).

With peers it also follows their presence and agent states for the consensus view
(monitor/consensus.py), on the same connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiomqtt

from monitor import mqtt_payloads as payloads
from monitor import mqtt_topics as topics
from monitor.consensus import PeerView
from monitor.errors import MonitorError
from monitor.state import StateStore

log = logging.getLogger(__name__)

USERNAME_ENV = "AGENTHA_MQTT_USERNAME"
PASSWORD_ENV = "AGENTHA_MQTT_PASSWORD"  # noqa: S105 - a variable name, not a secret
DEFAULT_BUFFER = 1000
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 30.0
SYNC_INTERVAL_S = 1.0  # retained states are compared with what was published this often


class MqttConfigError(MonitorError):
    """A broker URL or MQTT option that cannot work; the message is one line for the user."""


@dataclass(frozen=True, slots=True)
class MqttSettings:
    host: str
    port: int
    tls: bool
    monitor_id: str
    ca_file: Path | None = None
    username: str | None = None
    password: str | None = None
    buffer: int = DEFAULT_BUFFER
    peers: tuple[str, ...] = ()
    shard: str | None = None

    @property
    def url(self) -> str:
        """The broker URL as shown in logs (never with credentials)."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        context = ssl.create_default_context(
            cafile=str(self.ca_file) if self.ca_file is not None else None
        )
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context


def mqtt_settings(
    url: str,
    monitor_id: str,
    *,
    insecure: bool = False,
    ca_file: Path | None = None,
    buffer: int = DEFAULT_BUFFER,
    peers: tuple[str, ...] = (),
    shard: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> MqttSettings:
    """Check the broker URL and options; credentials come from the environment only."""
    env = os.environ if environ is None else environ
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise MqttConfigError(
            f"{url!r}: expected mqtts://HOST[:PORT] (or mqtt:// with --mqtt-insecure)"
        )
    if parts.username is not None or parts.password is not None:
        raise MqttConfigError(
            f"{parts.scheme}://{parts.hostname}: credentials do not belong in the URL; "
            f"set {USERNAME_ENV} and {PASSWORD_ENV}"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise MqttConfigError(f"{url!r}: expected no path or query after HOST[:PORT]")
    tls = parts.scheme == "mqtts"
    if not tls and not insecure:
        raise MqttConfigError(
            f"{url!r}: plain mqtt:// sends states and credentials unencrypted; "
            "use mqtts://, or allow it with --mqtt-insecure on a trusted network"
        )
    if ca_file is not None and not tls:
        raise MqttConfigError("a CA bundle is for mqtts:// only")
    if ca_file is not None and not ca_file.is_file():
        raise MqttConfigError(f"CA bundle {ca_file}: no such file")
    for name in (monitor_id, *peers):
        if not topics.valid_monitor_id(name):
            raise MqttConfigError(
                f"monitor id {name!r}: expected 1 to 63 letters, digits, '.', '-' or '_'"
            )
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError:
        raise MqttConfigError(f"{url!r}: the port is not a number from 0 to 65535") from None
    if buffer < 1:
        raise MqttConfigError(f"outage buffer {buffer}: expected at least 1 event")
    username, password = env.get(USERNAME_ENV) or None, env.get(PASSWORD_ENV) or None
    if (username is None) != (password is None):
        raise MqttConfigError(f"set both {USERNAME_ENV} and {PASSWORD_ENV}, or neither")
    return MqttSettings(
        host=parts.hostname,
        port=port,
        tls=tls,
        monitor_id=monitor_id,
        ca_file=ca_file,
        username=username,
        password=password,
        buffer=buffer,
        peers=peers,
        shard=shard,
    )


class Publisher:
    """Publishes one monitor's store to the broker; ``run()`` until cancelled or ``stop()``."""

    def __init__(self, settings: MqttSettings, store: StateStore, *, version: str) -> None:
        self.settings = settings
        self.store = store
        self.version = version
        self.peers = PeerView(p for p in settings.peers if p != settings.monitor_id)
        self.connected = False
        self.published = 0  # events delivered (PUBACK received)
        self.dropped = 0  # events lost to the outage buffer's bound
        self.last_error: str | None = None
        self._sent = 0  # seq of the last event delivered
        self._retained: dict[str, bytes] = {}  # topic -> payload the broker holds from us
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        backoff = BACKOFF_MIN_S
        while not self._stopping.is_set():
            try:
                await self._connected_session()
                return  # stop() asked us to leave
            except aiomqtt.MqttError as exc:
                self._failed(str(exc))
            except OSError as exc:  # raised by paho around the socket before aiomqtt wraps it
                self._failed(exc.strerror or str(exc))
            # Jitter spreads the reconnects of many monitors after a broker restart.
            delay = backoff * random.uniform(0.5, 1.0)  # noqa: S311 - not for security
            backoff = min(backoff * 2, BACKOFF_MAX_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    def stop(self) -> None:
        """Ask ``run()`` to say ``offline`` and disconnect cleanly (it returns by itself)."""
        self._stopping.set()
        self._wake.set()

    def _failed(self, error: str) -> None:
        was_connected, self.connected = self.connected, False
        if was_connected:
            log.warning(
                "MQTT broker %s: connection lost (%s); reconnecting", self.settings.url, error
            )
        elif error != self.last_error:
            log.error("MQTT broker %s: cannot connect: %s; retrying", self.settings.url, error)
        self.last_error = error

    def _client(self) -> aiomqtt.Client:
        s = self.settings
        will = aiomqtt.Will(
            topics.presence(s.monitor_id),
            payloads.encode(self._presence("offline")),
            qos=1,
            retain=True,
        )
        return aiomqtt.Client(
            s.host,
            s.port,
            identifier=f"agentha-{s.monitor_id}",
            username=s.username,
            password=s.password,
            will=will,
            tls_context=s.ssl_context(),
            keepalive=10,  # a dead monitor's last will fires within 1.5x this
            timeout=5.0,
        )

    def _presence(self, status: str) -> dict[str, object]:
        s = self.settings
        return payloads.presence(
            s.monitor_id, status, time.time(), shard=s.shard, version=self.version
        )

    async def _connected_session(self) -> None:
        s = self.settings
        async with self._client() as client:
            self.connected, self.last_error = True, None
            log.info("MQTT broker %s: connected as %s", s.url, s.monitor_id)
            # The broker may have lost (or never had) what we published: start over.
            self._retained.clear()
            presence = payloads.encode(self._presence("online"))
            await client.publish(topics.presence(s.monitor_id), presence, qos=1, retain=True)
            for peer in self.peers.peers:
                for topic_filter in topics.peer_filters(peer):
                    await client.subscribe(topic_filter, qos=1)
            publishing = asyncio.create_task(self._publish_loop(client))
            receiving = asyncio.create_task(self._receive_loop(client))
            try:
                done, _ = await asyncio.wait(
                    [publishing, receiving], return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    task.result()  # re-raise MqttError: the connection is gone
            finally:
                for task in (publishing, receiving):
                    task.cancel()
                await asyncio.gather(publishing, receiving, return_exceptions=True)
            # Leaving on purpose: a clean disconnect does not fire the will, so say it.
            offline = payloads.encode(self._presence("offline"))
            await client.publish(topics.presence(s.monitor_id), offline, qos=1, retain=True)
        self.connected = False

    # -- publishing ------------------------------------------------------------------------

    async def _publish_loop(self, client: aiomqtt.Client) -> None:
        backlog = True  # what piled up while we were not connected: the bounded buffer
        while not self._stopping.is_set():
            await self._send_events(client, bounded=backlog)
            backlog = False
            await self._sync_retained(client)
            self._wake.clear()
            waiter = asyncio.create_task(self.store.events.wait(self._sent))
            woken = asyncio.create_task(self._wake.wait())
            try:
                await asyncio.wait(
                    [waiter, woken], timeout=SYNC_INTERVAL_S, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                waiter.cancel()
                woken.cancel()

    async def _send_events(self, client: aiomqtt.Client, *, bounded: bool) -> None:
        """Deliver the events after the last one delivered; ``bounded`` right after a
        (re)connect, when only the last ``buffer`` events of the outage are kept."""
        pending = self.store.events.since(self._sent)
        if not pending:
            return
        lost = pending[0].seq - self._sent - 1  # already gone from the monitor's event log
        if bounded and len(pending) > self.settings.buffer:
            lost += len(pending) - self.settings.buffer
            pending = pending[-self.settings.buffer :]
        if lost > 0:
            self.dropped += lost
            log.warning(
                "MQTT: %d events dropped (outage buffer holds %d); delivering from event %d",
                lost,
                self.settings.buffer,
                pending[0].seq,
            )
            self._sent = pending[0].seq - 1
        topic = topics.events(self.settings.monitor_id)
        for event in pending:
            payload = payloads.encode(payloads.event(self.settings.monitor_id, event))
            await client.publish(topic, payload, qos=1, retain=False)
            self._sent = event.seq
            self.published += 1

    async def _sync_retained(self, client: aiomqtt.Client) -> None:
        """Publish every retained state that differs from what the broker holds from us."""
        wanted = self.retained_payloads()
        for topic, payload in wanted.items():
            if self._retained.get(topic) != payload:
                await client.publish(topic, payload, qos=1, retain=True)
                self._retained[topic] = payload
        for topic in [t for t in self._retained if t not in wanted]:
            await client.publish(topic, b"", qos=1, retain=True)  # clears the retained state
            del self._retained[topic]

    def retained_payloads(self) -> dict[str, bytes]:
        """Topic -> payload of every agent and group state, as they are now."""
        mid, store = self.settings.monitor_id, self.store
        wanted = {
            topics.agent(mid, a): payloads.encode(payloads.agent(mid, store, a))
            for a in store.agent_ids
        }
        wanted.update(
            (topics.group(mid, g), payloads.encode(payloads.group(mid, store, g)))
            for g in store.group_ids
        )
        return wanted

    # -- following peers -------------------------------------------------------------------

    async def _receive_loop(self, client: aiomqtt.Client) -> None:
        # Also how a lost connection is noticed while there is nothing to publish.
        async for message in client.messages:
            parsed = topics.parse(str(message.topic))
            if parsed is None:
                continue
            monitor_id, kind, object_id = parsed
            payload = message.payload if isinstance(message.payload, bytes) else b""
            if kind == "presence":
                self.peers.on_presence(monitor_id, payload)
            elif kind == "agents":
                self.peers.on_agent(monitor_id, object_id, payload)
