"""`agentha demo` as a newcomer runs it: the printed commands work, Ctrl-C stops everything."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(90)


def read_until(proc: subprocess.Popen[str], marker: str, within: float = 45.0) -> str:
    """The demo's stdout up to the line containing ``marker`` (read by a thread: no stall)."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")))
    reader.daemon = True
    reader.start()
    deadline = time.monotonic() + within
    while not any(marker in line for line in lines):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise AssertionError(f"demo did not print {marker!r}:\n{''.join(lines)}")
        time.sleep(0.1)
    return "".join(lines)


def test_demo_commands_work_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agentha",
            "demo",
            "--dir",
            str(tmp_path / "demo"),
            "--listen",
            "127.0.0.1:0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        out = read_until(proc, "curl -N")
        commands = re.findall(r"^curl .*$", out, re.MULTILINE)
        status, pause, no_key = commands[:3]

        def run(command: str) -> str:
            done = subprocess.run(
                ["bash", "-c", command], capture_output=True, text=True, timeout=20, check=False
            )
            return done.stdout

        assert run(status).startswith("HTTP/1.1 200")
        paused = run(pause)
        assert paused.startswith("200\n") and "HTTP/1.1 503" in paused
        assert run(no_key).startswith("HTTP/1.1 401")

        url = re.search(r"^monitor: (\S+)/api/v1/snapshot", out, re.MULTILINE).group(1)
        deadline = time.monotonic() + 20
        while True:
            with urllib.request.urlopen(f"{url}/api/v1/snapshot", timeout=5) as answer:
                snap = json.load(answer)
            agents = snap["agents"]
            if (
                agents["test/orders/orders-1"]["state"] == "paused"
                and agents["prod/orders/orders-3"]["state"] == "paused"
                and snap["groups"]["test/orders"]["status"] != "unknown"
            ):
                break
            assert time.monotonic() < deadline, agents
            time.sleep(0.5)
        assert snap["groups"]["test/orders"]["status"] == "at_risk"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert not (tmp_path / "demo" / "fleet.json").exists()  # removed on a clean stop
