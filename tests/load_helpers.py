"""Helpers for the load tests: the agentha command as a subprocess, free ports, Locust's CSV."""

from __future__ import annotations

import csv
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


def locust_totals(csv_prefix: Path) -> dict[str, tuple[int, int]]:
    """Locust's own (requests, failures) per name, and for "Aggregated", from its stats CSV."""
    with Path(f"{csv_prefix}_stats.csv").open(newline="") as handle:
        return {
            row["Name"]: (int(row["Request Count"]), int(row["Failure Count"]))
            for row in csv.DictReader(handle)
        }


def timeline_totals(path: Path) -> dict[str, tuple[int, int]]:
    """The same figures summed from a timeline, lines of the same second added up."""
    per_endpoint = totals(read_timeline(path))
    out = {name: (t.requests, t.fail) for name, t in per_endpoint.items()}
    total = total_of(per_endpoint.values())
    out["Aggregated"] = (total.requests, total.fail)
    return out
