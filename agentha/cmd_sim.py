"""`agentha sim`: run a simulated Frends agent fleet until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import fleetsim
from agentha.errors import CommandError

# Agents listed one per line in the start-up summary; the rest are in fleet.json.
SUMMARY_AGENTS = 24


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sim",
        help="run a simulated agent fleet (virtual agents, gateways, control API)",
        description=(
            "Run virtual Frends agents with real TLS on loopback addresses, an API Gateway "
            "Agent per group and a control API that changes agent conditions at run time. "
            "Without --fleet or --agents the demo fleet runs. Stops on Ctrl-C or SIGTERM."
        ),
    )
    add_fleet_arguments(parser)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--fleet", type=Path, metavar="FILE", help="fleet file (YAML)")
    source.add_argument(
        "--agents", type=int, metavar="N", help="a quick fleet: one environment, groups of 3-4"
    )
    parser.add_argument(
        "--write-fleet",
        type=Path,
        metavar="DIR",
        help="write fleet.json, inventory.yaml, ca.pem, secrets.env and the control token "
        "here (default: a private temporary folder removed on exit)",
    )
    parser.set_defaults(run=run)


def add_fleet_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by the commands that start a fleet."""
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="worker processes hosting the agents (0: all in this process; "
        "default: chosen from the fleet size and the open-file limit)",
    )
    parser.add_argument(
        "--control-port",
        type=int,
        default=0,
        metavar="P",
        help="port of the control API on 127.0.0.1 (default: a free one)",
    )
    parser.add_argument(
        "--address-base",
        default=fleetsim.DEFAULT_BASE,
        metavar="NET",
        help=f"loopback network the agents get addresses from (default {fleetsim.DEFAULT_BASE})",
    )


def options(
    args: argparse.Namespace, spec: fleetsim.FleetSpec, write_dir: Path
) -> fleetsim.SimOptions:
    if args.workers is not None and not 0 <= args.workers <= 64:
        raise CommandError("--workers must be from 0 to 64")
    if not 0 <= args.control_port <= 65535:
        raise CommandError("--control-port must be from 0 to 65535")
    try:
        base = fleetsim.parse_base(args.address_base)
    except fleetsim.FleetError as exc:
        raise CommandError(str(exc)) from None
    return fleetsim.SimOptions(spec, base, args.workers, args.control_port, write_dir)


def run(args: argparse.Namespace) -> int:
    try:
        if args.fleet is not None:
            spec = fleetsim.load(args.fleet)
        elif args.agents is not None:
            spec = fleetsim.quick(args.agents)
        else:
            spec = fleetsim.load_demo()
    except fleetsim.FleetError as exc:
        raise CommandError(str(exc)) from None
    with output_dir(args.write_fleet) as directory:
        return serve(options(args, spec, directory), print_summary)


@contextlib.contextmanager
def output_dir(requested: Path | None):
    """The folder for the fleet's files; a private temporary one when none was asked for."""
    if requested is not None:
        yield requested
        return
    temporary = Path(tempfile.mkdtemp(prefix="agentha-sim-"))
    try:
        yield temporary
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def serve(opts: fleetsim.SimOptions, announce: Callable[[fleetsim.RunningFleet], None]) -> int:
    """Start the fleet, call ``announce`` once it is listening, run until a stop signal."""
    try:
        asyncio.run(_serve(opts, announce))
    except fleetsim.FleetError as exc:
        raise CommandError(str(exc)) from None
    return 0


async def _serve(
    opts: fleetsim.SimOptions, announce: Callable[[fleetsim.RunningFleet], None]
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with fleetsim.running_fleet(opts) as fleet:
        announce(fleet)
        await stop.wait()
        print("agentha: stopping the fleet", file=sys.stderr)


def print_summary(fleet: fleetsim.RunningFleet) -> None:
    """What runs where; never a secret value."""
    groups = {(a["env"], a["group"]) for a in fleet.agents}
    envs = {a["env"] for a in fleet.agents}
    where = f"over {fleet.workers} worker processes" if fleet.workers else "in this process"
    print(
        f"agentha sim: {len(fleet.agents)} agents in {len(groups)} groups "
        f"({len(envs)} environment{'' if len(envs) == 1 else 's'}), {where}"
    )
    members: dict[str, list[dict]] = {}
    for agent in fleet.agents:
        members.setdefault(f"{agent['env']}/{agent['group']}", []).append(agent)
    shown = 0
    for gw in fleet.gateways:
        if shown >= SUMMARY_AGENTS:
            break
        print(f"  {gw['id']:<24} gateway {gw['url']}")
        for agent in members.get(gw["id"], []):
            extra = ""
            if agent["conditions"]["plain_port"] != "closed":
                extra = f"  (plain HTTP on port {agent['plain_http_port']})"
            flags = [k for k in ("paused", "stopped", "hang") if agent["conditions"][k]]
            extra += f"  [{', '.join(flags)}]" if flags else ""
            print(f"    {agent['name']:<22} {agent['url']}{extra}")
            shown += 1
    if shown < len(fleet.agents):
        print(f"  ... and {len(fleet.agents) - shown} more agents (see fleet.json)")
    print(f"control API: {fleet.control_url}  (bearer token in {fleet.files['control-token']})")
    print(f"CA certificate: {fleet.files['ca.pem']}")
    print(f"secrets: set -a; . {fleet.files['secrets.env']}; set +a")
    print(f"inventory: {fleet.files['inventory.yaml']}")
    print(f"ready: {fleet.fleet_json}  (Ctrl-C stops the fleet)", flush=True)
