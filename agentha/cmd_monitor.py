"""`agentha monitor`: probe every agent of an inventory, serve the state and /metrics."""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import sys
from pathlib import Path

from agentha.errors import CommandError

DEFAULT_LISTEN = "127.0.0.1:9731"
TOKEN_ENV = "AGENTHA_API_TOKEN"  # noqa: S105 - a variable name, not a secret

EPILOG = f"""\
The monitor probes each agent's status endpoint (every 5 s by default, again after 1 s when a
probe fails), audits TLS and plain-HTTP exposure (every 5 min), applies rise/fall thresholds and
rolls agents up into group availability. One listener serves:

  /metrics             Prometheus metrics
  /api/v1/snapshot     the whole state as JSON
  /api/v1/events       state transitions as Server-Sent Events (resume with Last-Event-ID)
  /healthz             liveness of the monitor itself

Set {TOKEN_ENV} to require 'Authorization: Bearer <token>' on everything but /healthz.
SIGHUP reloads the inventory; a bad file is reported and the running one kept.

examples:
  agentha monitor -c inventory.yaml
  agentha monitor -c inventory.yaml --listen 127.0.0.1:9800 --status-interval 10
  curl -s http://{DEFAULT_LISTEN}/api/v1/snapshot | jq '.groups'
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "monitor",
        help="probe every agent and serve state, events and Prometheus metrics",
        description="Run the high-availability monitor on an inventory.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-c",
        "--config",
        required=True,
        metavar="FILE",
        type=Path,
        help="inventory file (see 'agentha config check')",
    )
    parser.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help=f"where to serve the API and /metrics (default {DEFAULT_LISTEN})",
    )
    parser.add_argument(
        "--tls-cert",
        type=Path,
        metavar="FILE",
        help="serve HTTPS with this certificate chain (PEM)",
    )
    parser.add_argument("--tls-key", type=Path, metavar="FILE", help="private key for --tls-cert")
    timing = parser.add_argument_group("probe timing (seconds)")
    timing.add_argument("--status-interval", type=_positive, default=5.0)
    timing.add_argument("--status-timeout", type=_positive, default=3.0)
    timing.add_argument(
        "--fast-interval",
        type=_positive,
        default=1.0,
        help="status re-probe interval after a failure (default 1)",
    )
    timing.add_argument("--tls-interval", type=_positive, default=300.0)
    timing.add_argument("--plaintext-interval", type=_positive, default=300.0)
    timing.add_argument("--entrypoint-interval", type=_positive, default=10.0,
                        help="API checks through each group's entrypoint (default 10)")
    timing.add_argument("--auth-interval", type=_positive, default=300.0,
                        help="API checks without credentials, expecting 401/403 (default 300)")
    timing.add_argument(
        "--rise", type=_count, default=2, help="successes that bring a down agent back (default 2)"
    )
    timing.add_argument(
        "--fall", type=_count, default=2, help="failures that take an agent down (default 2)"
    )
    timing.add_argument(
        "--concurrency", type=_count, default=512, help="probes in flight at most (default 512)"
    )
    logs = parser.add_argument_group("logging")
    logs.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    logs.add_argument("--log-format", default="text", choices=["text", "json"])
    parser.set_defaults(run=run)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"expected 0 < seconds <= 86400, got {text}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise CommandError(f"--listen {text!r}: expected HOST:PORT, for example {DEFAULT_LISTEN}")
    return host, int(port)


def run(args: argparse.Namespace) -> int:
    # Imported here so that `agentha --help` and other commands start fast.
    from monitor.errors import InventoryError
    from monitor.logs import setup_logging
    from monitor.serve import Listen, serve
    from monitor.service import MonitorSettings, ProbeTiming

    host, port = parse_listen(args.listen)
    ssl_context = None
    if (args.tls_cert is None) != (args.tls_key is None):
        raise CommandError("--tls-cert and --tls-key go together")
    if args.tls_cert is not None:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            ssl_context.load_cert_chain(args.tls_cert, args.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise CommandError(
                f"--tls-cert/--tls-key: cannot load: {exc.strerror or exc}"
            ) from None
    token = os.environ.get(TOKEN_ENV) or None
    settings = MonitorSettings(
        timings={
            "status": ProbeTiming(args.status_interval, args.status_timeout, args.fast_interval),
            "tls": ProbeTiming(args.tls_interval, 10.0),
            "plaintext": ProbeTiming(args.plaintext_interval, 10.0),
            "entrypoint": ProbeTiming(args.entrypoint_interval, 5.0, 2.0),
            "auth": ProbeTiming(args.auth_interval, 10.0),
        },
        rise=args.rise,
        fall=args.fall,
        concurrency=args.concurrency,
    )
    filters = setup_logging(args.log_level, args.log_format)

    def ready(server) -> None:
        inventory = server.monitor.inventory
        print(f"agentha monitor: {inventory.summary()}; serving {server.url}", file=sys.stderr)
        for finding in inventory.findings:
            print(f"finding: {finding}", file=sys.stderr)

    try:
        asyncio.run(
            serve(
                args.config,
                Listen(host, port, ssl_context, token),
                settings,
                filters=filters,
                on_ready=ready,
            )
        )
    except InventoryError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    except OSError as exc:
        raise CommandError(f"--listen {args.listen}: {exc.strerror or exc}") from None
    return 0
