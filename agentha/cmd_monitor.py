"""`agentha monitor`: probe every agent of an inventory, serve the state and /metrics."""

from __future__ import annotations

import argparse
import os
import socket
import ssl
import sys
from pathlib import Path

from agentha.argtypes import seconds, whole
from agentha.errors import CommandError

DEFAULT_LISTEN = "127.0.0.1:9731"
INTERVAL = seconds(0, 86400, above_low=True)
AT_LEAST_1 = whole(1)
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

With --mqtt the monitor also publishes retained agent and group states, its events (QoS 1) and
its presence (last will: offline) under agentha/v1/<monitor-id>/ (docs/mqtt.md). The broker's
username and password come from AGENTHA_MQTT_USERNAME and AGENTHA_MQTT_PASSWORD only.
With --peers it follows other monitors through the broker and serves a consensus view (an agent
is down only when a majority of live vantage points see it down) in the snapshot and /metrics.
With --shard K/N it probes only its share of the inventory (rendezvous hashing on agent ids).

examples:
  agentha monitor -c inventory.yaml
  agentha monitor -c inventory.yaml --listen 127.0.0.1:9800 --status-interval 10
  curl -s http://{DEFAULT_LISTEN}/api/v1/snapshot | jq '.groups'
  agentha monitor -c inventory.yaml --mqtt mqtts://broker.example.com --mqtt-ca ca.pem \\
      --monitor-id dc1 --peers dc2,dc3
  agentha monitor -c inventory.yaml --mqtt mqtt://127.0.0.1:1883 --mqtt-insecure \\
      --monitor-id shard-1 --shard 1/2 --peers shard-2
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
    timing.add_argument("--status-interval", type=INTERVAL, default=5.0)
    timing.add_argument("--status-timeout", type=INTERVAL, default=3.0)
    timing.add_argument(
        "--fast-interval",
        type=INTERVAL,
        default=1.0,
        help="status re-probe interval after a failure (default 1)",
    )
    timing.add_argument("--tls-interval", type=INTERVAL, default=300.0)
    timing.add_argument("--plaintext-interval", type=INTERVAL, default=300.0)
    timing.add_argument(
        "--entrypoint-interval",
        type=INTERVAL,
        default=10.0,
        help="API checks through each group's entrypoint (default 10)",
    )
    timing.add_argument(
        "--auth-interval",
        type=INTERVAL,
        default=300.0,
        help="API checks without credentials, expecting 401/403 (default 300)",
    )
    timing.add_argument(
        "--rise",
        type=AT_LEAST_1,
        default=2,
        help="successes that bring a down agent back (default 2)",
    )
    timing.add_argument(
        "--fall", type=AT_LEAST_1, default=2, help="failures that take an agent down (default 2)"
    )
    timing.add_argument(
        "--concurrency", type=AT_LEAST_1, default=512, help="probes in flight at most (default 512)"
    )
    audit = parser.add_argument_group("security audit of the group APIs (docs/audit.md)")
    audit.add_argument(
        "--audit-interval",
        type=INTERVAL,
        metavar="SECONDS",
        help="run 'agentha audit' on every group at this interval, e.g. 3600; its findings go "
        "to the snapshot, /metrics and MQTT (default: off; at most 300 requests per group)",
    )
    audit.add_argument(
        "--audit-production",
        action="store_true",
        help="audit environments with the production profile too (like 'agentha audit --yes')",
    )
    mqtt = parser.add_argument_group("MQTT, peers and sharding")
    mqtt.add_argument(
        "--mqtt",
        metavar="URL",
        help="publish to this broker: mqtts://HOST[:PORT] (default port 8883)",
    )
    mqtt.add_argument(
        "--mqtt-insecure",
        action="store_true",
        help="allow a plain mqtt:// broker URL (unencrypted; for loopback and tests)",
    )
    mqtt.add_argument(
        "--mqtt-ca",
        type=Path,
        metavar="FILE",
        help="CA bundle (PEM) that signs the broker's certificate (default: the system's)",
    )
    mqtt.add_argument(
        "--mqtt-buffer",
        type=AT_LEAST_1,
        default=1000,
        metavar="N",
        help="events kept for delivery while the broker is away (default 1000)",
    )
    mqtt.add_argument(
        "--monitor-id",
        metavar="ID",
        help="this monitor's name in topics and among peers (default: the host name)",
    )
    mqtt.add_argument(
        "--peers",
        metavar="ID,ID",
        help="ids of the other monitors to agree with through the broker",
    )
    mqtt.add_argument(
        "--shard",
        metavar="K/N",
        help="probe only shard K of N of the inventory (for example 1/3)",
    )
    logs = parser.add_argument_group("logging")
    logs.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    logs.add_argument("--log-format", default="text", choices=["text", "json"])
    parser.set_defaults(run=run)


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise CommandError(f"--listen {text!r}: expected HOST:PORT, for example {DEFAULT_LISTEN}")
    return host, int(port)


def mqtt_options(args: argparse.Namespace):
    """The MQTT settings and shard the flags ask for: ``(MqttSettings | None, Shard | None)``."""
    from monitor.mqtt import MqttConfigError, mqtt_settings
    from monitor.shard import parse_shard

    shard = None
    if args.shard is not None:
        try:
            shard = parse_shard(args.shard)
        except ValueError as exc:
            raise CommandError(f"--shard: {exc}") from None
    if args.mqtt is None:
        for flag, value in (("--peers", args.peers), ("--mqtt-ca", args.mqtt_ca)):
            if value:
                raise CommandError(f"{flag} needs --mqtt (peers are followed through the broker)")
        return None, shard
    peers = tuple(p.strip() for p in (args.peers or "").split(",") if p.strip())
    monitor_id = args.monitor_id or socket.gethostname().split(".")[0]
    try:
        settings = mqtt_settings(
            args.mqtt,
            monitor_id,
            insecure=args.mqtt_insecure,
            ca_file=args.mqtt_ca,
            buffer=args.mqtt_buffer,
            peers=peers,
            shard=str(shard) if shard else None,
        )
    except MqttConfigError as exc:
        raise CommandError(f"--mqtt: {exc}") from None
    return settings, shard


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
    mqtt, shard = mqtt_options(args)
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
        audit_interval=args.audit_interval,
        audit_production=args.audit_production,
    )
    filters = setup_logging(args.log_level, args.log_format)

    def ready(server) -> None:
        inventory = server.monitor.inventory
        print(f"agentha monitor: {inventory.summary()}; serving {server.url}", file=sys.stderr)
        for finding in inventory.findings:
            print(f"finding: {finding}", file=sys.stderr)

    import uvloop

    try:
        # uvloop: a quarter of the memory per kept-alive TLS connection and a third less CPU per
        # probe than asyncio's own loop (bench/README.md).
        uvloop.run(
            serve(
                args.config,
                Listen(host, port, ssl_context, token),
                settings,
                filters=filters,
                on_ready=ready,
                mqtt=mqtt,
                shard=shard,
            )
        )
    except InventoryError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    except OSError as exc:
        raise CommandError(f"--listen {args.listen}: {exc.strerror or exc}") from None
    return 0
