"""The MQTT tests' broker: a real Mosquitto on free loopback ports with a generated config
(monitor/mqtt_broker.py), stopped at teardown."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.mqtt_broker import LocalMosquitto, find_mosquitto

if find_mosquitto() is None:
    pytest.skip("mosquitto is not installed", allow_module_level=True)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LocalMosquitto]:
    """A plain loopback broker that keeps durable sessions across a kill -9."""
    with LocalMosquitto(tmp_path / "broker", persistence=True) as running:
        yield running
