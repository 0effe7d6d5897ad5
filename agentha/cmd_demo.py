"""`agentha demo`: the demo fleet, the monitor watching it, and commands to poke at both."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import itertools
import os
import shlex
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import fleetsim
from agentha import cmd_sim
from agentha.cmd_monitor import DEFAULT_LISTEN, parse_listen
from agentha.errors import CommandError

if TYPE_CHECKING:
    from monitor.inventory import Inventory

DEFAULT_DIR = Path("demo-fleet")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="start the demo fleet and the monitor, and show how to try them",
        description=(
            "Start the demo fleet (2 environments, 3 groups, 8 agents, gateways, planted "
            "findings: a certificate expiring in 10 days, an open plain-HTTP port, a paused "
            "agent), write its files to a folder, run the monitor on it and open the terminal "
            "dashboard (in a terminal; elsewhere, print commands to try). q or Ctrl-C stops "
            "everything."
        ),
        epilog=(
            "examples:\n"
            "  agentha demo                    # the dashboard on the demo fleet\n"
            "  agentha demo --scenario         # agents pause, stop, hang and recover by "
            "themselves\n"
            "  agentha demo --no-dashboard     # text only: URLs and curl commands to try\n"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--no-dashboard",
        action="store_true",
        help="do not open the dashboard; print what runs where and commands to try "
        "(the default when not in a terminal)",
    )
    parser.add_argument(
        "--scenario",
        action="store_true",
        help="change agent conditions every few seconds (pause, stop, hang, slow, expired "
        "certificate, each reverting by itself) so there is something to watch",
    )
    parser.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help=f"where the monitor serves its API and /metrics (default {DEFAULT_LISTEN})",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_DIR,
        metavar="DIR",
        help=f"folder for the fleet's files: fleet.json, ca.pem... (default ./{DEFAULT_DIR})",
    )
    parser.add_argument(
        "--mqtt",
        action="store_true",
        help="also start a local Mosquitto on a free loopback port and publish to it "
        "(needs the Debian package 'mosquitto')",
    )
    cmd_sim.add_fleet_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    host, port = parse_listen(args.listen)
    if args.mqtt:
        from monitor.mqtt_broker import find_mosquitto

        if find_mosquitto() is None:
            raise CommandError("--mqtt: mosquitto is not installed (Debian package 'mosquitto')")
    try:
        spec = fleetsim.load_demo()
        dashboard = not args.no_dashboard and sys.stdin.isatty() and sys.stdout.isatty()
        asyncio.run(
            _demo(
                cmd_sim.options(args, spec, args.dir),
                host,
                port,
                mqtt=args.mqtt,
                dashboard=dashboard,
                scenario=args.scenario,
            )
        )
    except fleetsim.FleetError as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(f"--listen {args.listen}: {exc.strerror or exc}") from None
    return 0


async def _demo(
    opts: fleetsim.SimOptions,
    host: str,
    port: int,
    *,
    mqtt: bool = False,
    dashboard: bool = False,
    scenario: bool = False,
) -> None:
    from monitor.logs import setup_logging
    from monitor.mqtt import mqtt_settings
    from monitor.mqtt_broker import LocalMosquitto
    from monitor.serve import Listen, MonitorServer
    from monitor.service import DEFAULT_TIMINGS, MonitorSettings, ProbeTiming

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # Audits every minute instead of every five, so the planted findings show up soon.
    timings = {**DEFAULT_TIMINGS, "tls": ProbeTiming(60, 10), "plaintext": ProbeTiming(60, 10)}
    async with contextlib.AsyncExitStack() as stack:
        fleet = await stack.enter_async_context(fleetsim.running_fleet(opts))
        # The monitor reads secrets from the environment, as everywhere: the fleet's generated
        # ones are put there for this process only.
        os.environ.update(read_env_file(fleet.files["secrets.env"]))
        inventory = _load(fleet.files["inventory.yaml"])
        folder = fleet.files["inventory.yaml"].parent
        # Under the dashboard, log lines would scribble over the screen: they go to a file.
        log_file = stack.enter_context((folder / "monitor.log").open("a")) if dashboard else None
        filters = setup_logging("info", stream=log_file)
        publish = None
        if mqtt:
            # Plain MQTT is acceptable here only because the broker listens on loopback alone.
            broker = stack.enter_context(
                LocalMosquitto(fleet.files["inventory.yaml"].parent / "mosquitto")
            )
            publish = mqtt_settings(broker.url, "demo", insecure=True, environ={})
        server = await stack.enter_async_context(
            MonitorServer(
                inventory,
                Listen(host, port),
                MonitorSettings(timings=timings),
                filters=filters,
                mqtt=publish,
            )
        )
        text = io.StringIO()
        announce(fleet, server.url, text)
        if publish is not None:
            text.write(f"MQTT broker: {publish.url}  topics: agentha/v1/demo/#\n")
        guide = folder / "try-it.txt"
        guide.write_text(text.getvalue())
        if scenario:
            stack.enter_context(_cancelling(asyncio.create_task(play_scenario(fleet))))
        if dashboard:
            from tui import DashboardApp, HttpFeed

            app = DashboardApp(HttpFeed(server.url))

            async def exit_on_stop() -> None:  # SIGTERM; Ctrl-C reaches the dashboard as a key
                await stop.wait()
                app.exit()

            stack.enter_context(_cancelling(asyncio.create_task(exit_on_stop())))
            await app.run_async()
            print(f"What ran where, and commands to try next time: {guide}")
        else:
            print(text.getvalue(), end="", flush=True)
            await stop.wait()
        print("agentha: stopping the monitor and the fleet", file=sys.stderr)


@contextlib.contextmanager
def _cancelling(task: asyncio.Task[None]) -> Iterator[None]:
    try:
        yield
    finally:
        task.cancel()


# What the scenario does to the test environment's agents, in turn; each reverts by itself.
SCENARIO = (
    ("test/orders/orders-1", {"paused": True, "ttl_s": 20}),
    ("test/invoices/invoices-1", {"stopped": True, "ttl_s": 15}),
    ("test/orders/orders-2", {"slow_ms": 800, "ttl_s": 20}),
    ("test/invoices/invoices-2", {"hang": True, "ttl_s": 15}),
    ("test/orders/orders-1", {"cert": "expired", "ttl_s": 30}),
)
SCENARIO_STEP_S = 12.0


async def play_scenario(fleet: fleetsim.RunningFleet) -> None:
    """Apply the scenario's steps through the control API, round and round."""
    import aiohttp

    token = fleet.files["control-token"].read_text().strip()
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        for agent, change in itertools.cycle(SCENARIO):
            await asyncio.sleep(SCENARIO_STEP_S)
            url = f"{fleet.control_url}/v1/agents/{agent}/conditions"
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.patch(url, json=change, timeout=aiohttp.ClientTimeout(5)):
                    pass


def _load(path: Path) -> Inventory:
    from monitor.errors import InventoryError
    from monitor.inventory import load_inventory

    try:
        return load_inventory(path)
    except InventoryError as exc:
        raise CommandError(f"the demo fleet's inventory is invalid: {exc}") from None


def read_env_file(path: Path) -> dict[str, str]:
    """``NAME=value`` lines, as the simulator writes them."""
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {name.strip(): value for name, value in pairs if not name.startswith("#")}


def announce(fleet: fleetsim.RunningFleet, monitor_url: str, out: TextIO) -> None:
    with contextlib.redirect_stdout(out):
        cmd_sim.print_summary(fleet)
    print(
        f"monitor: {monitor_url}/api/v1/snapshot  {monitor_url}/metrics  "
        f"{monitor_url}/api/v1/events",
        file=out,
    )
    print("\nTry it (from another terminal):", file=out)
    for title, command in try_commands(fleet, monitor_url):
        print(f"\n# {title}\n{command}", file=out)
    print(file=out)


def try_commands(fleet: fleetsim.RunningFleet, monitor_url: str) -> list[tuple[str, str]]:
    """curl commands: a 200, a pause through the control API then 503, a 401, the monitor."""
    by_id = {a["id"]: a for a in fleet.agents}
    ca = shlex.quote(str(fleet.files["ca.pem"]))
    token = shlex.quote(str(fleet.files["control-token"]))
    open_agent = by_id["test/orders/orders-1"]
    keyed_agent = by_id["prod/orders/orders-1"]
    status = f"curl -i --cacert {ca} {open_agent['url']}/frendsstatusinfo"
    pause = (
        f"curl -s -o /dev/null -w '%{{http_code}}\\n' -X PATCH "
        f'-H "Authorization: Bearer $(cat {token})" '
        "-H 'Content-Type: application/json' -d '{\"paused\": true, \"ttl_s\": 60}' "
        f"{fleet.control_url}/v1/agents/{open_agent['id']}/conditions && {status}"
    )
    no_key = f"curl -i --cacert {ca} {keyed_agent['url']}/frendsstatusinfo"
    return [
        (f"{open_agent['id']} is running: 200 with processes and memory", status),
        ("pause it for 60 s through the control API, then it answers 503", pause),
        (f"{keyed_agent['id']} requires the health-check key: 401 without it", no_key),
        (
            "what the monitor sees: groups and their spare agents",
            f"curl -s {monitor_url}/api/v1/snapshot | python3 -m json.tool | grep -A9 '\"groups\"'",
        ),
        ("follow state changes as they happen", f"curl -N {monitor_url}/api/v1/events"),
        *_chaos_command(fleet),
    ]


CHAOS_EXAMPLE = Path("examples/chaos/stop-one-agent.yaml")


def _chaos_command(fleet: fleetsim.RunningFleet) -> list[tuple[str, str]]:
    """The chaos example, when this is the repository root and the demo's default folder
    (the example finds the demo's files at ../../demo-fleet)."""
    secrets = fleet.files["secrets.env"]
    if not CHAOS_EXAMPLE.is_file() or secrets.parent.resolve() != Path("demo-fleet").resolve():
        return []
    return [
        (
            "a chaos run: one agent of test/orders stopped under load, then a verdict (1 min; "
            "the dashboard shows the run and its fault while it goes)",
            f"set -a; . {shlex.quote(str(secrets))}; set +a; agentha chaos run {CHAOS_EXAMPLE}",
        )
    ]
