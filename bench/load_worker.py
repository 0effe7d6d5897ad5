"""Requests per second per Locust worker process against the simulated fleet, and its CPU.

    .venv/bin/python bench/load_worker.py                       # 1 process, then 2 workers
    .venv/bin/python bench/load_worker.py --users 40 --duration 30 --processes 1

Starts ``agentha sim --agents 4`` (one group of 4 agents behind its gateway), then for each
``--processes`` value runs the same Locust command ``agentha load run`` builds, with users
calling back to back (``--pacing 0``) through the gateway. Figures:

* **req/s** — requests completed per second over the timeline's full seconds, first and
  last left out (ramp-up and stop), and that divided by the worker processes;
* **Locust CPU** — user + system CPU of the Locust process tree (``wait4`` rusage of the
  process and the workers it forked and reaped) over the run's wall time, as % of one core;
* **sim CPU** — the same for the fleet simulator, from ``/proc/PID/stat``;
* **failures** and **p50 / p95** latency over the whole run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loadtests.run import RunSettings, locust_command  # noqa: E402
from loadtests.shapes import parse_shape  # noqa: E402
from loadtests.timeline import read_timeline, total_of, totals  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def start_sim(directory: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentha", "sim", "--agents", "4", "--control-port", "0",
         "--write-fleet", str(directory)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (directory / "fleet.json").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("agentha sim did not start")
        time.sleep(0.05)
    return proc


def secrets(directory: Path) -> dict[str, str]:
    lines = (directory / "secrets.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def one_run(fleet: Path, sim: subprocess.Popen[bytes], args, processes: int, out: Path) -> dict:
    info = json.loads((fleet / "fleet.json").read_text())
    group = info["gateways"][0]["id"]
    settings = RunSettings(
        inventory=fleet / "inventory.yaml",
        group=group,
        shape=parse_shape(f"steady:users={args.users},ramp=1s,duration={args.duration}s"),
        thresholds=(),
        window_s=10,
        out=out,
        processes=processes,
        pacing_s=0.0,
    )
    out.mkdir(parents=True)
    sim_cpu = cpu_seconds(sim.pid)
    started = time.monotonic()
    proc = subprocess.Popen(
        locust_command(settings),
        env={**os.environ, **secrets(fleet)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    sim_cpu = cpu_seconds(sim.pid) - sim_cpu
    seconds = read_timeline(out / "timeline.jsonl")
    steady = [s for s in seconds[1:-1] if s.endpoints]
    steady_requests = sum(t.requests for s in steady for t in s.endpoints.values())
    rate = steady_requests / len(steady) if steady else 0.0
    total = total_of(totals(seconds).values())
    workers = max(1, processes)
    locust_cpu = usage.ru_utime + usage.ru_stime
    return {
        "processes": processes,
        "workers": workers,
        "users": args.users,
        "req_s": round(rate, 1),
        "req_s_per_worker": round(rate / workers, 1),
        "requests": total.requests,
        "failures": total.fail,
        "p50_ms": total.latency.percentile(0.5),
        "p95_ms": total.latency.percentile(0.95),
        "wall_s": round(wall, 1),
        "locust_cpu_pct": round(100 * locust_cpu / wall, 1),
        "locust_cpu_ms_per_req": round(1000 * locust_cpu / max(1, total.requests), 3),
        "sim_cpu_pct": round(100 * sim_cpu / wall, 1),
        "exit": proc.returncode,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--duration", type=int, default=20, help="seconds per run")
    parser.add_argument(
        "--processes", type=int, nargs="+", default=[0, 2], help="0: one process (default 0 2)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="agentha-bench-load-") as tmp:
        fleet = Path(tmp) / "fleet"
        sim = start_sim(fleet)
        try:
            for processes in args.processes:
                row = one_run(fleet, sim, args, processes, Path(tmp) / f"run-{processes}")
                print(json.dumps(row), flush=True)
        finally:
            sim.send_signal(signal.SIGTERM)
            sim.wait(timeout=30)
    print(f"load average: {os.getloadavg()[0]:.2f}, cores: {os.cpu_count()}")


if __name__ == "__main__":
    main()
