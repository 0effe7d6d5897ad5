"""`agentha demo --mqtt`: a local Mosquitto starts, the demo monitor publishes to it, and Ctrl-C
stops the broker with everything else (after the monitor said offline)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from aio_helpers import until

from tests.mqtt.mqtt_support import subscribed

pytestmark = pytest.mark.timeout(90)


def read_until(proc: subprocess.Popen[str], pattern: str, within: float = 45.0) -> re.Match:
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")))
    reader.daemon = True
    reader.start()
    deadline = time.monotonic() + within
    while not (found := re.search(pattern, "".join(lines))):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise AssertionError(f"demo did not print {pattern!r}:\n{''.join(lines)}")
        time.sleep(0.1)
    return found


def accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_demo_starts_and_stops_a_local_broker(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentha", "demo", "--mqtt", "--dir", str(tmp_path / "demo"),
         "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        port = int(read_until(proc, r"MQTT broker: mqtt://127\.0\.0\.1:(\d+)")[1])

        async def follow() -> dict | None:
            async with subscribed(port, "agentha/v1/demo/#") as received:
                await until(lambda: (received.presence("demo") or {}).get("status") == "online")
                await until(lambda: bool(received.retained()), what="retained states")
                return received.presence("demo")

        assert asyncio.run(follow())["status"] == "online"
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
        assert proc.returncode == 0
        assert not accepts(port)  # the broker is gone
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
