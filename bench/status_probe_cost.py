"""What one status probe costs the monitor, and what one agent costs it in memory.

Starts ``agentha sim --agents N``, then, for each variant, a child process that builds the
monitor's probe path (``monitor.service.Monitor``: scheduler, status prober, ledger, store;
no HTTP API, no audits, no API checks) on the fleet's agents and runs it under uvloop, as
``agentha monitor`` does. After the first runs, one window:

  CPU per probe   the child's CPU seconds (time.process_time) / status runs in the window
  KiB per agent   the child's RSS after the window minus its RSS before the monitor started,
                  over the agents (almost all of it: one kept-alive TLS connection each)
  lag p50 / p99   the scheduler's own figures over its last 4,096 runs

Variants: ``--ticks`` the scheduler's tick (runs due within a tick start together; 0.05 s is
the default), ``--tls12`` the status connections held to TLS 1.2 (a what-if for memory: with
TLS 1.3 OpenSSL keeps more per connection after the server's session tickets).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import procstat
import stack

EPILOG = """\
examples:
  .venv/bin/python bench/status_probe_cost.py                       # 2,000 agents, ~2 min
  .venv/bin/python bench/status_probe_cost.py --ticks 0.005 0.05 --tls12
"""


def child(args: argparse.Namespace) -> int:
    """Run the probe path on the inventory; print one JSON line of figures."""
    import asyncio

    import uvloop

    from monitor.inventory import load_inventory
    from monitor.service import Monitor, MonitorSettings, ProbeTiming

    if args.tls12:
        import functools
        import ssl

        from monitor.probes import contexts, status

        @functools.lru_cache(maxsize=64)
        def capped(ca_bundle, min_version, check_hostname):
            ctx = contexts.verified_context.__wrapped__(ca_bundle, min_version, check_hostname)
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            return ctx

        status.verified_context = capped

    inventory = load_inventory(args.inventory, dict(os.environ))

    async def measure() -> dict[str, float]:
        timing = ProbeTiming(args.interval, 3.0, 1.0)
        monitor = Monitor(inventory, MonitorSettings(timings={"status": timing}))
        monitor.scheduler._max_tick = args.tick  # the variant under test
        before = procstat.rss_bytes(os.getpid())
        task = asyncio.create_task(monitor.run())
        await asyncio.sleep(args.warmup)
        runs, cpu, wall = monitor.scheduler.runs, time.process_time(), time.monotonic()
        await asyncio.sleep(args.window)
        runs = monitor.scheduler.runs - runs
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
        agents = len(monitor.store.agent_ids)
        up = sum(monitor.store.agent(a).state.value == "up" for a in monitor.store.agent_ids)
        result = {
            "tick": args.tick,
            "tls12": args.tls12,
            "agents": agents,
            "up": up,
            "probes_per_s": runs / wall,
            "cores": cpu / wall,
            "cpu_per_probe_ms": 1000 * cpu / runs if runs else float("nan"),
            "kib_per_agent": (procstat.rss_bytes(os.getpid()) - before) / 1024 / agents,
            "lag_p50_ms": 1000 * (monitor.scheduler.lag.quantile(0.5) or 0.0),
            "lag_p99_ms": 1000 * (monitor.scheduler.lag.quantile(0.99) or 0.0),
            "failures": monitor.scheduler.failures,
        }
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return result

    print(json.dumps(uvloop.run(measure())))
    return 0


def main() -> int:
    parser = stack.argument_parser(__doc__, EPILOG)
    parser.add_argument("--agents", type=int, default=2000, help="fleet size (default 2000)")
    parser.add_argument(
        "--interval", type=float, default=10.0, help="status interval in seconds (default 10)"
    )
    parser.add_argument(
        "--ticks",
        type=float,
        nargs="+",
        default=[0.05],
        metavar="S",
        help="scheduler ticks to compare (default 0.05)",
    )
    parser.add_argument(
        "--tls12",
        action="store_true",
        help="also run each tick with status connections held to TLS 1.2",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=15.0,
        help="seconds of first runs before the window (default 15)",
    )
    parser.add_argument("--window", type=float, default=20.0, help="measured seconds (default 20)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--inventory", help=argparse.SUPPRESS)
    parser.add_argument("--tick", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    if args.agents < 1 or args.interval <= 0 or args.window <= 0 or min(args.ticks) <= 0:
        parser.error("--agents, --interval, --window and --ticks must be positive")
    variants = [(tick, tls12) for tick in args.ticks for tls12 in (False, True)[: 1 + args.tls12]]
    results = []
    with (
        tempfile.TemporaryDirectory(prefix="status-cost-") as tmp,
        stack.fleet(Path(tmp) / "fleet", args.agents) as fleet,
    ):
        inventory = fleet.agents_only_inventory()
        env = {**os.environ, **fleet.secrets}
        for tick, tls12 in variants:
            print(f"-- tick {tick:g} s{', TLS 1.2' if tls12 else ''}", file=sys.stderr)
            command = [
                sys.executable,
                __file__,
                "--child",
                "--inventory",
                str(inventory),
                "--tick",
                str(tick),
                "--interval",
                str(args.interval),
                "--warmup",
                str(args.warmup),
                "--window",
                str(args.window),
            ]
            if tls12:
                command.append("--tls12")
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                tail = " | ".join(done.stderr.strip().splitlines()[-3:])
                raise stack.BenchError(f"child exited with {done.returncode}: {tail}")
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"\n{args.agents} agents, status every {args.interval:g} s, window {args.window:g} s")
    print(
        "tick    TLS      probes/s  CPU (cores)  CPU per probe  KiB per agent  "
        "lag p50 / p99     up     failed"
    )
    for r in results:
        print(
            f"{r['tick']:<7g} {'1.2' if r['tls12'] else 'as agreed':<9} "
            f"{r['probes_per_s']:>7.0f}  {r['cores']:>11.3f}  {r['cpu_per_probe_ms']:>10.3f} ms"
            f"  {r['kib_per_agent']:>13.1f}  {r['lag_p50_ms']:>5.0f} / {r['lag_p99_ms']:<5.0f} ms"
            f"  {r['up']:>5}  {r['failures']:>6}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(stack.main_guard(main))
