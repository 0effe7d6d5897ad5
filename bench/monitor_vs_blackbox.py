"""CPU per status probe: the monitor against blackbox_exporter, on one fleet in one run.

Starts ``agentha sim --agents N``, then at the same time ``agentha monitor`` (agent probes
only: status every 10 s; TLS and plaintext audits once, in the first minute) and
blackbox_exporter with an ``http_2xx``-style module for the agents' status endpoint (TLS
verified against the fleet CA, the ``health-check-api-key`` header where the environment
needs it). A small asyncio driver
in this process calls blackbox's ``/probe?target=...&module=...`` for every agent once per
interval, spread evenly, over kept-alive connections, as Prometheus would scrape it. After the
first minute, one window measures from /proc (utime+stime):

  monitor    its CPU seconds / status probe runs in the window (its /metrics)
  blackbox   its CPU seconds / /probe calls answered in the window
  driver     this process (the /probe caller), apart, so it is clear what is measured
  fleet      the simulated fleet, serving both

blackbox opens a new TCP and TLS connection for every probe; the monitor keeps one open per
agent. The goal: the monitor's CPU per probe at most 0.25 of blackbox's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import aiohttp
import procstat
import promtext
import stack

BLACKBOX = "/usr/bin/prometheus-blackbox-exporter"
AUDITS_SPREAD_S = 60.0
STATUS_TIMEOUT_S = 3.0

EPILOG = """\
examples:
  .venv/bin/python bench/monitor_vs_blackbox.py                 # 1,000 agents, ~2.5 min
  .venv/bin/python bench/monitor_vs_blackbox.py --agents 2000 --window 120
  .venv/bin/python bench/monitor_vs_blackbox.py --blackbox ~/bin/blackbox_exporter
"""


def find_blackbox(given: str | None) -> str:
    for candidate in (given,) if given else (BLACKBOX, "blackbox_exporter"):
        found = shutil.which(candidate)
        if found:
            return found
    raise stack.BenchError(
        f"blackbox_exporter not found ({given or BLACKBOX}): install the Debian package "
        "prometheus-blackbox-exporter or pass --blackbox PATH"
    )


def module_name(environment: str) -> str:
    return f"frends_status_{environment.replace('-', '_')}"


def write_config(fleet: stack.Fleet, path: Path) -> None:
    """One module per environment; the file is 0600 since it may hold a health-check key."""
    lines = ["modules:"]
    for env in fleet.info["environments"]:
        lines += [
            f"  {module_name(env['name'])}:",
            "    prober: http",
            f"    timeout: {STATUS_TIMEOUT_S:g}s",
            "    http:",
            "      method: GET",
            "      valid_status_codes: [200]",
            "      preferred_ip_protocol: ip4",
            "      ip_protocol_fallback: false",
            "      fail_if_not_ssl: true",
            "      tls_config:",
            f"        ca_file: {fleet.ca_file}",
            "        min_version: TLS12",
        ]
        if env.get("hc_key_var"):
            key = fleet.secrets[env["hc_key_var"]]
            lines += ["      headers:", f"        health-check-api-key: '{key}'"]
    path.touch(mode=0o600)
    path.write_text("\n".join(lines) + "\n")


class Driver:
    """Calls blackbox's /probe for every agent once per interval, spread over the interval."""

    def __init__(self, blackbox_url: str, fleet: stack.Fleet, interval: float) -> None:
        self.targets = [
            f"{blackbox_url}/probe?"
            + urllib.parse.urlencode(
                {"target": f"{a['url']}/frendsstatusinfo", "module": module_name(a["env"])}
            )
            for a in fleet.agents
        ]
        self.interval = interval
        self.answered = 0
        self.succeeded = 0
        self.errors = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        connector = aiohttp.TCPConnector(limit=256)
        timeout = aiohttp.ClientTimeout(total=STATUS_TIMEOUT_S + 2)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            loop = asyncio.get_running_loop()
            start = loop.time()
            count = len(self.targets)
            await asyncio.gather(
                *(
                    self._every(session, url, start + i * self.interval / count)
                    for i, url in enumerate(self.targets)
                )
            )

    async def _every(self, session: aiohttp.ClientSession, url: str, due: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            # Not awaited here: a slow probe must not push this target's schedule back.
            task = asyncio.create_task(self._probe(session, url))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            due += self.interval

    async def _probe(self, session: aiohttp.ClientSession, url: str) -> None:
        try:
            async with session.get(url) as answer:
                body = await answer.read()
        except (aiohttp.ClientError, TimeoutError):
            self.errors += 1
            return
        self.answered += 1
        self.succeeded += b"\nprobe_success 1" in body


async def measure(
    fleet: stack.Fleet,
    monitor: stack.Monitor,
    blackbox: subprocess.Popen[bytes],
    blackbox_url: str,
    args: argparse.Namespace,
) -> dict[str, float]:
    driver = Driver(blackbox_url, fleet, args.interval)
    driving = asyncio.create_task(driver.run())
    trees = {"monitor": monitor.proc.pid, "blackbox": blackbox.pid, "fleet": fleet.proc.pid}
    driver_pid = {"driver": os.getpid()}
    names = {"agentha_probe_runs_total", "agentha_probe_failures_total"}
    try:
        print(f"   first minute ({args.warmup:g} s)...", file=sys.stderr)
        await asyncio.sleep(args.warmup)
        before = promtext.parse(await asyncio.to_thread(monitor.metrics), names, "none")
        answered, succeeded, errors = driver.answered, driver.succeeded, driver.errors
        start = procstat.read_cpu(trees, time.monotonic(), driver_pid)
        print(f"   measuring {args.window:g} s", file=sys.stderr)
        await asyncio.sleep(args.window)
        end = procstat.read_cpu(trees, time.monotonic(), driver_pid)
        answered, succeeded, errors = (
            driver.answered - answered,
            driver.succeeded - succeeded,
            driver.errors - errors,
        )
        after = promtext.parse(await asyncio.to_thread(monitor.metrics), names, "none")
    finally:
        driving.cancel()
    window = after.delta(before)
    runs = window.get("agentha_probe_runs_total")
    seconds = end.at - start.at
    ours = end.seconds_since(start, "monitor") / runs if runs else float("nan")
    theirs = end.seconds_since(start, "blackbox") / answered if answered else float("nan")
    return {
        "seconds": seconds,
        "runs": runs,
        "failures": window.get("agentha_probe_failures_total"),
        "answered": answered,
        "succeeded": succeeded,
        "errors": errors,
        "monitor_cores": end.cores_since(start, "monitor"),
        "blackbox_cores": end.cores_since(start, "blackbox"),
        "driver_cores": end.cores_since(start, "driver"),
        "fleet_cores": end.cores_since(start, "fleet"),
        "machine_cores": end.machine_cores_since(start),
        "ours_ms": 1000 * ours,
        "theirs_ms": 1000 * theirs,
        "driver_ms": 1000 * end.seconds_since(start, "driver") / answered if answered else 0.0,
        "ratio": ours / theirs,
        "monitor_rss": procstat.rss_bytes(monitor.proc.pid),
        "blackbox_rss": procstat.rss_bytes(blackbox.pid),
    }


def main() -> int:
    parser = stack.argument_parser(__doc__, EPILOG)
    parser.add_argument("--agents", type=int, default=1000, help="fleet size (default 1000)")
    parser.add_argument(
        "--interval",
        type=float,
        default=10.0,
        help="status probe interval for both, in seconds (default 10)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=AUDITS_SPREAD_S + 5,
        help="seconds before measuring (default 65)",
    )
    parser.add_argument("--window", type=float, default=60.0, help="measured seconds (default 60)")
    parser.add_argument(
        "--blackbox", metavar="PATH", help=f"blackbox_exporter binary (default {BLACKBOX})"
    )
    args = parser.parse_args()
    if args.agents < 1 or args.interval <= 0 or args.window <= 0 or args.warmup < 0:
        parser.error("--agents, --interval and --window must be positive, --warmup not negative")
    binary = find_blackbox(args.blackbox)
    with tempfile.TemporaryDirectory(prefix="monitor-vs-blackbox-") as tmp:
        work = Path(tmp)
        print(f"-- {args.agents} agents: starting the fleet", file=sys.stderr)
        with stack.fleet(work / "fleet", args.agents) as fleet:
            config = work / "blackbox.yml"
            write_config(fleet, config)
            check = subprocess.run(
                [binary, f"--config.file={config}", "--config.check"],
                capture_output=True,
                text=True,
                timeout=30,
            )
            if check.returncode != 0:
                raise stack.BenchError(
                    f"blackbox_exporter refused its config: "
                    f"{check.stderr.strip().splitlines()[-1:]}"
                )
            listen = f"127.0.0.1:{stack.free_port()}"
            command = [
                binary,
                f"--config.file={config}",
                f"--web.listen-address={listen}",
                "--log.level=warn",
            ]
            options = [
                "--status-interval",
                str(args.interval),
                "--status-timeout",
                str(STATUS_TIMEOUT_S),
                "--tls-interval",
                "86400",
                "--plaintext-interval",
                "86400",
            ]
            with (
                stack.running("blackbox_exporter", command, work / "blackbox.log") as blackbox,
                stack.monitor(fleet, work / "monitor.log", *options) as monitor,
            ):
                url = f"http://{listen}"
                stack.wait_until(
                    "blackbox_exporter",
                    blackbox,
                    work / "blackbox.log",
                    lambda: stack.answers(f"{url}/-/healthy"),
                    30.0,
                )
                r = asyncio.run(measure(fleet, monitor, blackbox, url, args))
    print(
        f"\n{args.agents} agents, status probe every {args.interval:g} s by each, "
        f"window {r['seconds']:.0f} s after {args.warmup:g} s, {os.cpu_count()} cores"
    )
    rows = [
        ("", "monitor", "blackbox", "driver"),
        ("probes in the window", f"{r['runs']:.0f}", f"{r['answered']:.0f}", ""),
        (
            "failed probes",
            f"{r['failures']:.0f}",
            f"{r['answered'] - r['succeeded'] + r['errors']:.0f}",
            "",
        ),
        (
            "CPU",
            f"{r['monitor_cores']:.3f} cores",
            f"{r['blackbox_cores']:.3f} cores",
            f"{r['driver_cores']:.3f} cores",
        ),
        (
            "CPU per probe",
            f"{r['ours_ms']:.3f} ms",
            f"{r['theirs_ms']:.3f} ms",
            f"{r['driver_ms']:.3f} ms",
        ),
        ("RSS", f"{r['monitor_rss'] / 2**20:.0f} MiB", f"{r['blackbox_rss'] / 2**20:.0f} MiB", ""),
    ]
    stack.print_columns(rows)
    print(
        f"fleet (serving both): {r['fleet_cores']:.3f} cores; machine busy: "
        f"{r['machine_cores']:.2f} cores"
    )
    print(f"monitor / blackbox CPU per probe: {r['ratio']:.2f} (goal at most 0.25)")
    return 0


if __name__ == "__main__":
    sys.exit(stack.main_guard(main))
