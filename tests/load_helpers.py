"""Helpers for the load tests: the agentha command as a subprocess, free ports, Locust's CSV."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from loadtests.timeline import read_timeline, total_of, totals


def agentha(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentha", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def locust_totals(path: Path) -> dict[str, tuple[int, int]]:
    """Locust's own final (requests, failures) per name, and for "Aggregated", as the timeline
    plugin's ``--totals`` wrote them from Locust's stats when it quit."""
    counts = json.loads(path.read_text())
    return {name: (c["requests"], c["failures"]) for name, c in counts.items()}


def timeline_totals(path: Path) -> dict[str, tuple[int, int]]:
    """The same figures summed from a timeline, lines of the same second added up."""
    per_endpoint = totals(read_timeline(path))
    out = {name: (t.requests, t.fail) for name, t in per_endpoint.items()}
    total = total_of(per_endpoint.values())
    out["Aggregated"] = (total.requests, total.fail)
    return out
