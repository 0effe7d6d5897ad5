"""mqtts:// with a CA bundle and a username/password from the environment, against a Mosquitto
TLS listener with a password file; a wrong password and an untrusted broker certificate are
reported as clear errors while the publisher keeps retrying."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aio_helpers import until

from monitor.mqtt import PASSWORD_ENV, USERNAME_ENV, Publisher, mqtt_settings
from monitor.mqtt_broker import LocalMosquitto
from monitor.state import StateStore
from tests.mqtt.mqtt_support import make_pki, subscribed

pytestmark = pytest.mark.timeout(60)

USER, PASSWORD = "agentha-monitor", "Br0ker-Pass!word"


@pytest.fixture
def tls_broker(tmp_path: Path):
    pki = make_pki(tmp_path / "pki")
    passwords = tmp_path / "passwords"
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(passwords), USER, PASSWORD], check=True, timeout=10
    )
    with LocalMosquitto(tmp_path / "broker", tls=(pki.cert, pki.key), passwords=passwords) as b:
        yield b, pki


@contextlib.asynccontextmanager
async def publishing(settings) -> AsyncIterator[Publisher]:
    publisher = Publisher(settings, StateStore({}), version="test")
    task = asyncio.create_task(publisher.run())
    try:
        yield publisher
    finally:
        publisher.stop()
        await asyncio.wait_for(task, 5)


def tls_settings(broker, ca: Path, password: str):
    return mqtt_settings(
        broker.tls_url,
        "secure-1",
        ca_file=ca,
        environ={USERNAME_ENV: USER, PASSWORD_ENV: password},
    )


@pytest.mark.asyncio
async def test_mqtts_with_ca_and_password(tls_broker) -> None:
    broker, pki = tls_broker
    async with (
        subscribed(broker.port, "agentha/v1/+/presence") as received,
        publishing(tls_settings(broker, pki.ca, PASSWORD)) as publisher,
    ):
        await until(lambda: publisher.connected, what="connected over TLS")
        await until(lambda: (received.presence("secure-1") or {}).get("status") == "online")
    assert received.presence("secure-1")["status"] == "offline"
    assert PASSWORD.encode() not in b"".join(p for _t, p, _r in received.messages)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("which", "expected"),
    [("password", "not authori"), ("ca", "certificate verify failed")],
)
async def test_wrong_password_and_untrusted_broker_are_clear_errors(
    tls_broker, fleet, caplog, which, expected
) -> None:
    broker, pki = tls_broker
    caplog.set_level(logging.ERROR, logger="monitor.mqtt")
    ca = fleet.ca_file if which == "ca" else pki.ca  # another CA: the broker is not trusted
    password = "Wrong-Pass!word1" if which == "password" else PASSWORD
    async with publishing(tls_settings(broker, ca, password)) as publisher:
        await until(lambda: publisher.last_error is not None, what="a connection error")
        assert not publisher.connected
    assert expected in publisher.last_error.lower()
    lines = [r.getMessage() for r in caplog.records]
    assert any(broker.tls_url in line and expected in line.lower() for line in lines), lines
    assert all(password not in line for line in lines)
