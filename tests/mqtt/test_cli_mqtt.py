"""`agentha monitor` MQTT flags: bad values are one-line errors with exit 2, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--mqtt", "mqtt://127.0.0.1:1883"], "--mqtt: 'mqtt://127.0.0.1:1883': plain mqtt://"),
        (["--peers", "m2"], "--peers needs --mqtt"),
        (["--shard", "3/2"], "--shard: expected 1 <= K <= N"),
        (["--mqtt", "mqtts://u:Pw-12345678!@h"], "credentials do not belong in the URL"),
        (["--mqtt", "mqtts://h", "--monitor-id", "a/b"], "monitor id 'a/b'"),
    ],
)
def test_bad_mqtt_flags_are_one_line_errors(fleet, flags: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agentha", "monitor", "-c", str(fleet.directory / "inventory.yaml"),
         "--listen", "127.0.0.1:0", *flags],
        capture_output=True, text=True, timeout=20, env={**os.environ, **fleet.secrets},
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert "Pw-12345678!" not in done.stderr
