"""`agentha load`: Locust load through a group's entrypoint, judged window by window."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from agentha.argtypes import seconds, whole
from agentha.errors import CommandError

if TYPE_CHECKING:
    from loadtests.thresholds import Threshold

EXIT_CODES = """\
exit codes:
  0  every threshold held in every window
  1  a threshold failed (each failing window is named)
  2  could not run: bad flags, inventory, shape or threshold, or Locust failed
"""

THRESHOLDS_HELP = """\
thresholds ([ENDPOINT:]METRIC OP VALUE; default: success>=99.9% and p95<300ms):
  success>=99.9%        share of calls with the API check's expected status
  p95<300ms, p99<1s     a latency percentile (failures included), or max
  list-orders:p99<1s    one endpoint (API check name, or oauth2-token) only
Each must hold in every --window of the run; a window where users ran and no call
completed fails a success threshold on all endpoints.
"""


def _run_epilog() -> str:
    from loadtests.shapes import describe_shapes

    return f"""\
Locust runs headless in its own process and calls the group's API checks through the
group's entrypoint (load balancer or API gateway) with their credentials: API key
headers or OAuth2 client credentials (token fetched and refreshed), secrets read from
the environment as the inventory's ${{NAME}} references say. TLS is verified against the
inventory's CA. Paths and bodies may hold placeholders for synthetic data: {{uuid}},
{{int}}, {{int:1-50}}, {{seq}}, {{hex}}, {{name}} (see docs/load.md).

shapes (--shape NAME[:KEY=VALUE,...]; durations as 30s, 5m, 1h):
{describe_shapes()}

{THRESHOLDS_HELP}
The output folder gets timeline.jsonl (one JSON line per second: calls, failures and
latency per endpoint), verdict.json, run.json, Locust's CSV files, report.html and log.

{EXIT_CODES}
examples:
  set -a; . fleet/secrets.env; set +a
  agentha load run -c fleet/inventory.yaml --group test/orders
  agentha load run -c inventory.yaml --group prod/orders --shape spike:peak=200,at=30s \\
      --duration 2m --threshold 'success>=99.5%' --threshold 'p99<800ms' --window 5
  agentha load run -c inventory.yaml --group prod/orders --shape soak:users=50 --processes 4
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    from agentha.cli import require_subcommand

    parser = subparsers.add_parser(
        "load",
        help="run Locust load through a group's entrypoint, pass/fail per time window",
        description="Load tests with Locust: named shapes, a per-second timeline, "
        "windowed thresholds.",
        epilog="Run 'agentha load COMMAND --help' for the options of a command.",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=type(parser))
    parser.set_defaults(run=require_subcommand(parser))

    run = commands.add_parser(
        "run",
        help="load one agent group and judge the run window by window",
        description="Run a headless Locust load test against one agent group of an inventory.",
        epilog=_run_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("-c", "--config", required=True, type=Path, metavar="FILE", help="inventory")
    run.add_argument(
        "--group",
        metavar="ENV/GROUP",
        help="the group to load (default: the inventory's only group with api_checks)",
    )
    run.add_argument(
        "--shape", default="steady", metavar="NAME[:K=V,...]", help="load shape (default steady)"
    )
    run.add_argument("--users", metavar="N", help="the shape's users (default: the shape's, 10)")
    run.add_argument(
        "--duration", metavar="TIME", help="how long, e.g. 90s or 5m (default: the shape's, 1m)"
    )
    run.add_argument(
        "--threshold",
        action="append",
        metavar="EXPR",
        help="pass/fail rule, repeatable (default: success>=99.9%% and p95<300ms)",
    )
    run.add_argument(
        "--window", type=whole(1, 86400), default=10, metavar="SECONDS", help="window length (10)"
    )
    run.add_argument(
        "--out", type=Path, metavar="DIR", help="output folder (default load-runs/ENV-GROUP-TIME)"
    )
    run.add_argument(
        "--processes",
        type=whole(-1, 256),
        default=0,
        metavar="N",
        help="Locust worker processes under one master (-1: one per core; default: one process)",
    )
    run.add_argument(
        "--pacing",
        type=seconds(0, 3600),
        default=1.0,
        metavar="SECONDS",
        help="each user starts a call every SECONDS; 0: back to back (default 1)",
    )
    run.add_argument(
        "--request-timeout",
        type=seconds(0, 3600),
        default=10.0,
        metavar="SECONDS",
        help="default 10",
    )
    run.add_argument("--host", metavar="URL", help="call this URL instead of the entrypoint")
    run.set_defaults(run=run_load)

    check = commands.add_parser(
        "check",
        help="judge an existing timeline against thresholds",
        description="Judge a timeline.jsonl (from 'agentha load run' or the Locust plugin).",
        epilog=f"{THRESHOLDS_HELP}\n{EXIT_CODES}\nexamples:\n"
        "  agentha load check load-runs/test-orders-20261129T120000Z/timeline.jsonl\n"
        "  agentha load check timeline.jsonl --threshold 'success>=99%' --window 30\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("timeline", type=Path, metavar="TIMELINE", help="timeline.jsonl")
    check.add_argument("--threshold", action="append", metavar="EXPR", help="repeatable")
    check.add_argument("--window", type=whole(1, 86400), default=10, metavar="SECONDS", help="(10)")
    check.set_defaults(run=run_check)


def _thresholds(texts: list[str] | None) -> tuple[Threshold, ...]:
    from loadtests.thresholds import DEFAULT_THRESHOLDS, parse_threshold

    return tuple(parse_threshold(text) for text in (texts or DEFAULT_THRESHOLDS))


def _say(line: str) -> None:
    print(line, flush=True)


def run_load(args: argparse.Namespace) -> int:
    from loadtests.errors import LoadError
    from loadtests.plan import default_group, read_inventory
    from loadtests.run import EXIT_COULD_NOT_RUN, RunSettings, default_out
    from loadtests.run import run_load as run
    from loadtests.shapes import parse_shape

    overrides = {
        key: value
        for key, value in (("users", args.users), ("duration", args.duration))
        if value is not None
    }
    try:
        shape = parse_shape(args.shape, **overrides)
        thresholds = _thresholds(args.threshold)
        group = args.group or default_group(read_inventory(args.config))
        settings = RunSettings(
            inventory=args.config,
            group=group,
            shape=shape,
            thresholds=thresholds,
            window_s=args.window,
            out=args.out or default_out(group),
            processes=args.processes,
            pacing_s=args.pacing,
            request_timeout_s=args.request_timeout,
            host=args.host,
        )
        return run(settings, say=_say).exit_code
    except LoadError as exc:
        raise CommandError(str(exc), EXIT_COULD_NOT_RUN) from None


def run_check(args: argparse.Namespace) -> int:
    from loadtests.errors import LoadError
    from loadtests.run import EXIT_COULD_NOT_RUN, check_timeline, summary_lines

    try:
        result = check_timeline(args.timeline, _thresholds(args.threshold), args.window)
    except LoadError as exc:
        raise CommandError(str(exc), EXIT_COULD_NOT_RUN) from None
    for line in summary_lines(result):
        print(line)
    return result.exit_code
