"""``agentha monitor`` as a process for tests: started on a free port, its log collected."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path


class MonitorProcess:
    def __init__(self, proc: subprocess.Popen[str], url: str, log: list[str]) -> None:
        self.proc, self.url, self.log = proc, url, log

    def get(self, path: str, token: str | None = None) -> tuple[int, str]:
        request = urllib.request.Request(self.url + path)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def snapshot(self, token: str | None = None) -> dict:
        return json.loads(self.get("/api/v1/snapshot", token)[1])


@contextlib.contextmanager
def monitor_process(inventory: Path, env: dict[str, str], *args: str) -> Iterator[MonitorProcess]:
    """``agentha monitor`` on ``inventory`` (status every 0.5 s unless ``args`` say else)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agentha",
            "monitor",
            "-c",
            str(inventory),
            "--listen",
            "127.0.0.1:0",
            "--status-interval",
            "0.5",
            "--fast-interval",
            "0.2",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
    )
    log: list[str] = []
    threading.Thread(target=lambda: log.extend(iter(proc.stderr.readline, "")), daemon=True).start()
    try:
        deadline = time.monotonic() + 30
        while not (found := re.search(r"serving (http://\S+)", "".join(log))):
            assert proc.poll() is None and time.monotonic() < deadline, "".join(log)
            time.sleep(0.05)
        yield MonitorProcess(proc, found.group(1), log)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise
