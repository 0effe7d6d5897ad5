"""What the monitor costs at 1,000 to 10,000 agents: CPU, CPU per probe, memory, lag, misses.

For each fleet size: start ``agentha sim --agents N``, then ``agentha monitor`` on its
inventory without the API checks (agent probes only: API checks make the fleet's gateways
health-check every agent each second) with the status probe every 10 s; wait out the first
runs (first connections and the one TLS and plaintext audit per agent, which the scheduler
spreads over 60 s, or longer at about 150 new jobs a second: status first, 67 s at 10,000
agents, every audit within 200 s; their interval is a day so none recurs), then measure a
window of status probes only:

  monitor CPU     utime+stime of the monitor process (/proc/PID/stat) over the window, in cores
  CPU per probe   monitor CPU seconds / probe runs started in the window (its /metrics)
  RSS             VmRSS of the monitor (/proc/PID/status) at the end of the window
  lag p50/p99     from the agentha_schedule_lag_seconds histogram (increase over the window)
  missed          increase of agentha_probe_missed_runs_total over the window
  fleet CPU       the simulated fleet's process tree over the same window (it shares the cores)

By default /metrics is read only at the window's edges, outside the CPU window; what one
scrape costs is measured afterwards and printed apart. With --scrape-interval S a scraper
reads /metrics every S seconds through the window as Prometheus does (gzip), so the monitor
CPU and the lag include scrapes. The goal at 10,000 agents on 2 cores: at most 0.5 core, p99
lag at most 250 ms, RSS at most 300 MB, none missed.
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import procstat
import promtext
import stack

COUNTERS = {
    "agentha_probe_runs_total",
    "agentha_probe_missed_runs_total",
    "agentha_probe_timeouts_total",
    "agentha_probe_failures_total",
}
LAG = "agentha_schedule_lag_seconds"
AUDITS_SPREAD_S = 60.0  # the scheduler spreads first runs over min(interval, 60 s)...
START_RATE = 150.0  # ...or longer: new jobs start about 150 a second (monitor/scheduler.py)
JOBS_PER_AGENT = 3  # status, tls, plaintext


def first_runs_s(agents: int) -> float:
    """Seconds over which the monitor starts the first run of every job."""
    return max(AUDITS_SPREAD_S, JOBS_PER_AGENT * agents / START_RATE)


EPILOG = """\
examples:
  .venv/bin/python bench/monitor_scale.py                          # 10,000 agents, ~2.5 min
  .venv/bin/python bench/monitor_scale.py --agents 1000 5000 10000 # the full table, ~7 min
  .venv/bin/python bench/monitor_scale.py --agents 2000 --window 60
"""


def scrape(monitor: stack.Monitor) -> tuple[promtext.Samples, float, int]:
    """(samples, seconds the scrape took, bytes) of one /metrics read."""
    started = time.monotonic()
    text = monitor.metrics()
    return promtext.parse(text, COUNTERS, LAG), time.monotonic() - started, len(text)


class Scraper(threading.Thread):
    """Reads /metrics every ``interval`` seconds with gzip, as Prometheus does, until stopped."""

    def __init__(self, monitor: stack.Monitor, interval: float) -> None:
        super().__init__(daemon=True)
        self.monitor, self.interval = monitor, interval
        self.stopped = threading.Event()
        self.seconds: list[float] = []
        self.failures = 0

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            started = time.monotonic()
            try:
                raw = stack.http(f"{self.monitor.url}/metrics", headers={"Accept-Encoding": "gzip"})
                gzip.decompress(raw)
            except OSError:
                self.failures += 1
                continue
            self.seconds.append(time.monotonic() - started)


def measure(size: int, args: argparse.Namespace, work: Path) -> dict[str, object]:
    print(f"-- {size} agents: starting the fleet", file=sys.stderr)
    with stack.fleet(work / f"fleet-{size}", size) as fleet:
        options = [
            "--status-interval",
            str(args.interval),
            "--tls-interval",
            "86400",
            "--plaintext-interval",
            "86400",
        ]
        started = time.monotonic()
        with stack.monitor(fleet, work / f"monitor-{size}.log", *options) as monitor:
            ready_s = time.monotonic() - started
            trees = {"monitor": monitor.proc.pid, "fleet": fleet.proc.pid}
            first = procstat.read_cpu(trees, time.monotonic())
            print(f"   monitor ready in {ready_s:.1f} s; first minute...", file=sys.stderr)
            warmup = args.warmup if args.warmup is not None else first_runs_s(size) + 5
            time.sleep(warmup)
            before, before_s, _ = scrape(monitor)
            start = procstat.read_cpu(trees, time.monotonic())
            print(f"   measuring {args.window:.0f} s", file=sys.stderr)
            scraper = None
            if args.scrape_interval:
                scraper = Scraper(monitor, args.scrape_interval)
                scraper.start()
            time.sleep(args.window)
            end = procstat.read_cpu(trees, time.monotonic())
            if scraper is not None:
                scraper.stopped.set()
                scraper.join()
            rss = procstat.rss_bytes(monitor.proc.pid)
            fleet_rss = sum(map(procstat.rss_bytes, procstat.tree_pids(fleet.proc.pid)))
            after, after_s, size_bytes = scrape(monitor)
            scraped = procstat.read_cpu(trees, time.monotonic())
            snapshot = monitor.snapshot()
    window = after.delta(before)
    runs = window.get("agentha_probe_runs_total")
    monitor_cpu = end.seconds_since(start, "monitor")
    states: dict[str, int] = {}
    for agent in snapshot["agents"].values():
        states[agent["state"]] = states.get(agent["state"], 0) + 1
    return {
        "agents": size,
        "ready_s": ready_s,
        "warmup_s": warmup,
        "first_cpu_s": start.seconds_since(first, "monitor"),
        "cores": end.cores_since(start, "monitor"),
        "cpu_per_probe_ms": 1000 * monitor_cpu / runs if runs else None,
        # Runs are counted between two /metrics reads, which take seconds at 10,000 agents
        # and end after the CPU window: per due probe is the steadier figure when none is
        # missed.
        "cpu_per_due_ms": 1000 * end.cores_since(start, "monitor") * args.interval / size,
        "probes_per_s": runs / (end.at - start.at),
        "rss": rss,
        "first_lag_p50": promtext.quantile(before.buckets, 0.50),
        "first_lag_p99": promtext.quantile(before.buckets, 0.99),
        "lag_p50": promtext.quantile(window.buckets, 0.50),
        "lag_p99": promtext.quantile(window.buckets, 0.99),
        "lag_le_250ms": promtext.share_at_most(window.buckets, 0.25),
        "missed": window.get("agentha_probe_missed_runs_total"),
        "missed_since_start": after.get("agentha_probe_missed_runs_total"),
        "timeouts": window.get("agentha_probe_timeouts_total"),
        "failures": window.get("agentha_probe_failures_total"),
        "fleet_cores": end.cores_since(start, "fleet"),
        "fleet_rss": fleet_rss,
        "machine_cores": end.machine_cores_since(start),
        "scrape_s": (before_s + after_s) / 2,
        "scrape_cpu_s": scraped.seconds_since(end, "monitor"),
        "scrape_mb": size_bytes / 1e6,
        "states": ", ".join(f"{n} {s}" for s, n in sorted(states.items())),
        "window_scrapes": (
            f"{len(scraper.seconds)} (gzip), {max(scraper.seconds):.2f} s at most"
            + (f", {scraper.failures} failed" if scraper.failures else "")
            if scraper is not None and scraper.seconds
            else "none"
        ),
    }


def _ms(seconds: object) -> str:
    return "n/a" if seconds is None else f"{1000 * seconds:.0f} ms"


def _fmt(value: object, spec: str, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{unit}"


ROWS = [
    ("agents", lambda r: f"{r['agents']:,}"),
    ("monitor ready after start", lambda r: _fmt(r["ready_s"], ".1f", " s")),
    ("first minute CPU (audits, connects)", lambda r: _fmt(r["first_cpu_s"], ".1f", " s")),
    ("status probes per second", lambda r: _fmt(r["probes_per_s"], ".0f")),
    ("monitor CPU", lambda r: _fmt(r["cores"], ".3f", " cores")),
    ("CPU per probe", lambda r: _fmt(r["cpu_per_probe_ms"], ".3f", " ms")),
    (
        "CPU per due probe (cores / (N / interval))",
        lambda r: _fmt(r["cpu_per_due_ms"], ".3f", " ms"),
    ),
    ("monitor RSS", lambda r: _fmt(r["rss"] / 2**20, ".0f", " MiB")),
    ("schedule lag p50 / p99, window", lambda r: f"{_ms(r['lag_p50'])} / {_ms(r['lag_p99'])}"),
    ("window runs with lag <= 250 ms", lambda r: _fmt(r["lag_le_250ms"], ".2%")),
    (
        "schedule lag p50 / p99, first minute",
        lambda r: f"{_ms(r['first_lag_p50'])} / {_ms(r['first_lag_p99'])}",
    ),
    (
        "missed runs (window / since start)",
        lambda r: f"{r['missed']:.0f} / {r['missed_since_start']:.0f}",
    ),
    ("timeouts / failed probes (window)", lambda r: f"{r['timeouts']:.0f} / {r['failures']:.0f}"),
    ("agent states at the end", lambda r: r["states"]),
    ("fleet CPU (sim and workers)", lambda r: _fmt(r["fleet_cores"], ".3f", " cores")),
    ("fleet RSS", lambda r: _fmt(r["fleet_rss"] / 2**20, ".0f", " MiB")),
    ("machine busy (all processes)", lambda r: _fmt(r["machine_cores"], ".2f", " cores")),
    ("scrapes in the window", lambda r: r["window_scrapes"]),
    ("one /metrics scrape: size", lambda r: _fmt(r["scrape_mb"], ".1f", " MB")),
    (
        "one /metrics scrape: time, monitor CPU",
        lambda r: f"{r['scrape_s']:.2f} s, {r['scrape_cpu_s']:.2f} s",
    ),
]


def print_table(results: list[dict[str, object]], args: argparse.Namespace) -> None:
    warmups = ", ".join(f"{r['warmup_s']:g}" for r in results)
    print(
        f"\nstatus interval {args.interval:g} s, window {args.window:g} s after "
        f"{warmups} s, {os.cpu_count()} cores"
    )
    cells = [[name, *(cell(r) for r in results)] for name, cell in ROWS]
    stack.print_columns(cells)


def main() -> int:
    parser = stack.argument_parser(__doc__, EPILOG)
    parser.add_argument(
        "--agents",
        type=int,
        nargs="+",
        default=[10_000],
        metavar="N",
        help="fleet sizes, one run each (default 10000)",
    )
    parser.add_argument(
        "--interval", type=float, default=10.0, help="status probe interval in seconds (default 10)"
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="seconds after the monitor is ready before measuring (default: "
        "5 s after every first run: 65 s up to 3,000 agents, 205 s at 10,000)",
    )
    parser.add_argument("--window", type=float, default=30.0, help="measured seconds (default 30)")
    parser.add_argument(
        "--scrape-interval",
        type=float,
        default=0.0,
        metavar="S",
        help="also read /metrics every S seconds in the window, with gzip, as "
        "Prometheus does (default 0: only at the window's edges)",
    )
    args = parser.parse_args()
    if min(args.agents) < 1 or args.interval <= 0 or args.window <= 0 or (args.warmup or 0) < 0:
        parser.error("--agents, --interval and --window must be positive, --warmup not negative")
    if args.scrape_interval < 0:
        parser.error("--scrape-interval must not be negative")
    if args.warmup is not None and args.warmup < first_runs_s(max(args.agents)):
        needed = first_runs_s(max(args.agents))
        print(
            f"note: with --warmup below {needed:.0f} s the window also holds "
            "first TLS and plaintext audits",
            file=sys.stderr,
        )
    with tempfile.TemporaryDirectory(prefix="monitor-scale-") as tmp:
        results = [measure(size, args, Path(tmp)) for size in args.agents]
    print_table(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(stack.main_guard(main))
