"""`agentha lb`: load balancer configuration for an agent group (HAProxy)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from agentha.argtypes import seconds, whole
from agentha.errors import CommandError

HAPROXY_EPILOG = """\
The configuration is the recommended setup in front of a Frends agent group:
TLS 1.2+ on both sides, agent certificates verified against the inventory's CA,
a health check on the status endpoint with the health-check-api-key header
(read by HAProxy from its environment: the key never enters the file), only 200
healthy so a paused agent (503) is drained, rise/fall with fastinter, and retries
with redispatch to another agent. See docs/haproxy.md.

The inventory's secrets must be set, as for 'agentha config check'. Advice
(an agent reached by IP address, a plain-HTTP entrypoint) goes to stderr.

examples:
  agentha lb haproxy-config -c inventory.yaml --group prod/orders > haproxy.cfg
  agentha lb haproxy-config -c inventory.yaml --group prod/orders \\
      --bind 10.0.0.5:443 --cert /etc/haproxy/certs/orders.pem --stats 127.0.0.1:8404 \\
      -o /etc/haproxy/haproxy.cfg
  haproxy -c -f /etc/haproxy/haproxy.cfg          # let HAProxy check it
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    from agentha.cli import require_subcommand

    parser = subparsers.add_parser(
        "lb",
        help="write a load balancer (HAProxy) configuration for an agent group",
        description="Load balancer configuration for an agent group.",
        epilog="Run 'agentha lb COMMAND --help' for the options of a command.",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=type(parser))
    parser.set_defaults(run=require_subcommand(parser))

    haproxy = commands.add_parser(
        "haproxy-config",
        help="write an HAProxy configuration for one group",
        description="Write an HAProxy configuration for one agent group of an inventory.",
        epilog=HAPROXY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    haproxy.add_argument(
        "-c", "--config", required=True, type=Path, metavar="FILE", help="inventory file"
    )
    haproxy.add_argument("--group", required=True, metavar="ENV/GROUP", help="the agent group")
    haproxy.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="write here (default: stdout)"
    )
    haproxy.add_argument(
        "--bind",
        metavar="ADDRESS:PORT",
        help="where HAProxy listens (default: the entrypoint's port on every address)",
    )
    haproxy.add_argument(
        "--cert",
        metavar="PEM",
        help="certificate chain and key for the entrypoint "
        "(default /etc/haproxy/certs/ENV-GROUP.pem)",
    )
    haproxy.add_argument(
        "--stats", metavar="ADDRESS:PORT", help="also serve /stats and /metrics here (loopback)"
    )
    check = haproxy.add_argument_group("health checks")
    check.add_argument(
        "--inter", type=seconds(0.01, 3600), default=2.0, help="seconds between checks (2)"
    )
    check.add_argument(
        "--fastinter",
        type=seconds(0.01, 3600),
        default=0.5,
        help="seconds between checks confirming a change",
    )
    check.add_argument("--rise", type=whole(1, 100), default=2, help="successes to bring back (2)")
    check.add_argument("--fall", type=whole(1, 100), default=2, help="failures to take out (2)")
    haproxy.set_defaults(run=run_haproxy_config)


def _address(flag: str, text: str | None) -> str | None:
    if text is None:
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535 or " " in host:
        raise CommandError(f"{flag} {text!r}: expected ADDRESS:PORT, for example 127.0.0.1:8404")
    return text


def run_haproxy_config(args: argparse.Namespace) -> int:
    from loadtests.errors import LoadError
    from loadtests.haproxy import HealthCheck, Options, haproxy_config
    from loadtests.plan import find_group, read_inventory

    options = Options(
        bind=_address("--bind", args.bind),
        cert=args.cert,
        stats=_address("--stats", args.stats),
        check=HealthCheck(
            inter=args.inter,
            fastinter=args.fastinter,
            downinter=args.inter,
            rise=args.rise,
            fall=args.fall,
        ),
    )
    try:
        group = find_group(read_inventory(args.config), args.group)
        config = haproxy_config(group, options)
    except LoadError as exc:
        raise CommandError(str(exc)) from None
    for note in config.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.output is None:
        sys.stdout.write(config.text)
        return 0
    try:
        tmp = args.output.with_name(args.output.name + ".tmp")
        tmp.write_text(config.text, encoding="utf-8")
        os.replace(tmp, args.output)
    except OSError as exc:
        raise CommandError(f"--output {args.output}: {exc.strerror or exc}") from None
    return 0
