"""`agentha demo`: the demo fleet with copy-pasteable commands to poke at it."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

import fleetsim
from agentha import cmd_sim
from agentha.errors import CommandError

DEFAULT_DIR = Path("demo-fleet")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="start the demo fleet and show how to try it",
        description=(
            "Start the demo fleet (2 environments, 3 groups, 8 agents, gateways, planted "
            "findings), write its files to a folder and print commands to try. Ctrl-C stops it."
        ),
    )
    parser.add_argument(
        "--dir", type=Path, default=DEFAULT_DIR, metavar="DIR",
        help=f"folder for the fleet's files: fleet.json, ca.pem... (default ./{DEFAULT_DIR})",
    )
    cmd_sim.add_fleet_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        spec = fleetsim.load_demo()
    except fleetsim.FleetError as exc:
        raise CommandError(str(exc)) from None
    return cmd_sim.serve(cmd_sim.options(args, spec, args.dir), announce)


def announce(fleet: fleetsim.RunningFleet) -> None:
    cmd_sim.print_summary(fleet)
    print()
    print("Try it (from another terminal):")
    for title, command in try_commands(fleet):
        print(f"\n# {title}\n{command}")
    print(flush=True)


def try_commands(fleet: fleetsim.RunningFleet) -> list[tuple[str, str]]:
    """Three curl commands: a 200, a pause through the control API then 503, a 401."""
    by_id = {a["id"]: a for a in fleet.agents}
    ca = shlex.quote(str(fleet.files["ca.pem"]))
    token = shlex.quote(str(fleet.files["control-token"]))
    open_agent = by_id["test/orders/orders-1"]
    keyed_agent = by_id["prod/orders/orders-1"]
    status = f"curl -i --cacert {ca} {open_agent['url']}/frendsstatusinfo"
    pause = (
        f"curl -s -o /dev/null -w '%{{http_code}}\\n' -X PATCH "
        f"-H \"Authorization: Bearer $(cat {token})\" "
        "-H 'Content-Type: application/json' -d '{\"paused\": true, \"ttl_s\": 60}' "
        f"{fleet.control_url}/v1/agents/{open_agent['id']}/conditions && {status}"
    )
    no_key = f"curl -i --cacert {ca} {keyed_agent['url']}/frendsstatusinfo"
    return [
        (f"{open_agent['id']} is running: 200 with processes and memory", status),
        ("pause it for 60 s through the control API, then it answers 503", pause),
        (f"{keyed_agent['id']} requires the health-check key: 401 without it", no_key),
    ]
