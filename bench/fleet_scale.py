"""How fast a large simulated fleet starts and how much memory it takes.

Starts ``agentha sim --agents N --write-fleet TMPDIR`` as a subprocess, measures the time
until fleet.json appears (the fleet's "ready" marker), the total RSS of its process tree
(read from /proc), checks that a random sample of agents answer 200 over TLS with the
fleet's CA, then stops it with SIGTERM and measures the stop. Prints a small table.

    .venv/bin/python bench/fleet_scale.py [--agents 10000] [--sample 200] [--workers N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from procstat import rss_bytes, tree_pids

READY_TIMEOUT_S = 300.0


async def check_sample(fleet: dict, sample: int) -> tuple[int, int, float]:
    """(answered 200, asked, seconds) for a random sample of agents, 50 at a time."""
    agents = random.sample(fleet["agents"], min(sample, len(fleet["agents"])))
    ctx = ssl.create_default_context(cafile=fleet["ca_file"])
    connector = aiohttp.TCPConnector(ssl=ctx, limit=50)
    timeout = aiohttp.ClientTimeout(total=30)
    started = time.monotonic()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(agent: dict) -> bool:
            try:
                async with session.get(f"{agent['url']}/frendsstatusinfo") as answer:
                    return answer.status == 200
            except (aiohttp.ClientError, TimeoutError):
                return False

        results = await asyncio.gather(*(one(a) for a in agents))
    return sum(results), len(agents), time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--sample", type=int, default=200)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="fleet-scale-") as tmp:
        directory = Path(tmp)
        command = [
            sys.executable,
            "-m",
            "agentha",
            "sim",
            "--agents",
            str(args.agents),
            "--write-fleet",
            str(directory),
        ]
        if args.workers is not None:
            command += ["--workers", str(args.workers)]
        started = time.monotonic()
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            while not (directory / "fleet.json").exists():
                if proc.poll() is not None:
                    print(proc.stderr.read().decode(), file=sys.stderr)
                    return 1
                if time.monotonic() - started > READY_TIMEOUT_S:
                    print("fleet did not become ready in time", file=sys.stderr)
                    return 1
                time.sleep(0.05)
            ready_s = time.monotonic() - started
            fleet = json.loads((directory / "fleet.json").read_text())
            time.sleep(1.0)  # let start-up garbage settle before reading memory
            pids = tree_pids(proc.pid)
            rss = sum(rss_bytes(pid) for pid in pids)
            ok, asked, sample_s = asyncio.run(check_sample(fleet, args.sample))
            rss_after = sum(rss_bytes(pid) for pid in tree_pids(proc.pid))
        finally:
            stop_started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            stop_s = time.monotonic() - stop_started

    rows = [
        ("agents", f"{len(fleet['agents'])}"),
        ("gateways", f"{len(fleet['gateways'])}"),
        ("worker processes", f"{fleet['workers']}"),
        ("processes in tree", f"{len(pids)}"),
        ("cpu cores", f"{os.cpu_count()}"),
        ("time to fleet.json", f"{ready_s:.1f} s"),
        ("RSS of process tree (idle)", f"{rss / 2**20:.0f} MiB"),
        ("RSS after the sample", f"{rss_after / 2**20:.0f} MiB"),
        ("RSS per agent (idle)", f"{rss / len(fleet['agents']) / 1024:.1f} KiB"),
        ("sample answering 200 over TLS", f"{ok}/{asked} in {sample_s:.1f} s"),
        ("stop (SIGTERM to exit)", f"{stop_s:.1f} s, exit code {proc.returncode}"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0 if ok == asked and proc.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
