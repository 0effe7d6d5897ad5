"""`agentha tui`: the operators' terminal dashboard on a running monitor."""

from __future__ import annotations

import argparse
import os
import ssl
import sys
from pathlib import Path
from urllib.parse import urlsplit

from agentha.argtypes import seconds
from agentha.errors import CommandError

DEFAULT_MONITOR = "http://127.0.0.1:9731"
TOKEN_ENV = "AGENTHA_API_TOKEN"  # noqa: S105 - a variable name, not a secret

EPILOG = f"""\
The dashboard reads the monitor's HTTP API (/api/v1/snapshot and /api/v1/events), so it works
the same on the monitor's host or over SSH from anywhere that reaches it. It shows groups by
status with their spare agents, agents by state with the last probe's age and latency, the
certificate's days left, TLS version and findings, and the monitor's events as they happen.
When the monitor cannot be reached a banner says so and the dashboard reconnects by itself.

keys: ? help, / search, f state filter, s sort, enter details, escape back, q quit

Set {TOKEN_ENV} when the monitor requires a bearer token (the same variable the monitor reads).

examples:
  agentha tui                                   # the monitor on {DEFAULT_MONITOR}
  agentha tui --monitor http://10.0.0.5:9731
  AGENTHA_API_TOKEN=... agentha tui --monitor https://monitor.example.com --ca-file ca.pem
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tui",
        help="terminal dashboard: groups, agents, certificates and events, live",
        description="Watch a running agentha monitor in the terminal.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--monitor",
        default=DEFAULT_MONITOR,
        metavar="URL",
        help=f"the monitor's API (default {DEFAULT_MONITOR})",
    )
    parser.add_argument(
        "--ca-file",
        type=Path,
        metavar="FILE",
        help="trust this CA (PEM) for an HTTPS monitor, instead of the system's",
    )
    parser.add_argument(
        "--poll-interval",
        type=seconds(0.1, 3600),
        default=1.0,
        metavar="S",
        help="seconds between snapshots at the least (default 1; large fleets stretch it)",
    )
    parser.set_defaults(run=run)


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CommandError(
            f"--monitor {url!r}: expected an http:// or https:// URL, for example {DEFAULT_MONITOR}"
        )
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise CommandError(f"--monitor {url!r}: the port is not a number 0-65535") from None
    return url


def run(args: argparse.Namespace) -> int:
    url = check_url(args.monitor)
    ssl_context = None
    if args.ca_file is not None:
        try:
            ssl_context = ssl.create_default_context(cafile=str(args.ca_file))
        except (OSError, ssl.SSLError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise CommandError(f"--ca-file {args.ca_file}: cannot load: {why}") from None
        ssl_context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise CommandError("agentha tui needs a terminal (stdin and stdout)")
    # Imported here so that `agentha --help` and other commands start fast.
    from tui.app import DashboardApp
    from tui.feed import HttpFeed

    token = os.environ.get(TOKEN_ENV) or None
    feed = HttpFeed(url, token=token, ssl_context=ssl_context, poll_interval=args.poll_interval)
    DashboardApp(feed).run()
    return 0
