"""`agentha chaos`: take agents offline under load and prove the group stays available."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from agentha.argtypes import whole
from agentha.errors import CommandError

if TYPE_CHECKING:
    from chaos.experiment import Experiment

EXIT_ABORTED, EXIT_ERROR = 2, 3  # chaos.record's codes, without importing chaos at start

EXIT_CODES = """\
exit codes:
  0  every hypothesis check passed
  1  a hypothesis check failed (the report names it and its window)
  2  aborted: the guard refused a fault, an abort condition fired, or the group was
     not steady before the run
  3  configuration or infrastructure error (experiment, inventory, driver, monitor, Locust)
  130  interrupted (Ctrl-C or SIGTERM); every fault was reverted first
"""

RUN_EPILOG = f"""\
A run goes: preflight (the monitor must say the group is steady) -> Locust load starts
in its own process -> warm-up -> baseline -> the method's steps (each fault checked by
the blast-radius guard against live monitor state, written to the journal, injected,
held, reverted) -> recovery -> verdict. Progress is printed as it goes.

Every fault is written to OUT/journal.jsonl before it is applied, and reverted on the
normal end, a failed guard or abort condition, an error, Ctrl-C and SIGTERM. After a
crash or SIGKILL, 'agentha chaos recover' reverts what the journal says is applied.

OUT gets run.json (the whole record), journal.jsonl, junit.xml, summary.md,
report.html (self-contained, with the timeline chart) and load/ (Locust's files).
The monitor API token is read from the variable the experiment's monitor.token_env
names; driver secrets likewise come from the environment only.

{EXIT_CODES}
examples:
  agentha demo --no-dashboard &          # a fleet and a monitor to try it on
  agentha chaos run examples/chaos/stop-one-agent.yaml --dry-run
  agentha chaos run examples/chaos/stop-one-agent.yaml --out chaos-runs/stop-1
  agentha chaos recover                  # after a crash: revert what is still applied
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    from agentha.cli import require_subcommand

    parser = subparsers.add_parser(
        "chaos",
        help="take agents offline under load; pass/fail with a report (pre-release runs)",
        description="Chaos experiments: faults on agents while load flows through the load "
        "balancer, judged against a steady-state hypothesis.",
        epilog="Run 'agentha chaos COMMAND --help' for the options of a command.",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=type(parser))
    parser.set_defaults(run=require_subcommand(parser))

    run = commands.add_parser(
        "run",
        help="run an experiment file",
        description="Run a chaos experiment and write its verdict and reports.",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("experiment", type=Path, metavar="EXPERIMENT.yaml")
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan and every guard decision (from live monitor state); touch nothing",
    )
    run.add_argument(
        "--yes", action="store_true", help="confirm a run on an environment with profile production"
    )
    run.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="output folder (default: the experiment's outputs.dir, else chaos-runs/NAME-TIME)",
    )
    run.add_argument("--seed", type=int, metavar="N", help="seed for random target choices")
    run.set_defaults(run=run_experiment)

    recover = commands.add_parser(
        "recover",
        help="revert the faults a crashed or killed run left applied",
        description="Revert every fault that a run's journal says is still applied.",
        epilog="Without arguments, every run that did not end cleanly on this machine is "
        "recovered (their journals are registered under $AGENTHA_STATE_DIR, default "
        "~/.local/state/agentha).\n\nexit codes: 0 all reverted (or nothing to do), "
        "1 a revert failed, 3 a journal could not be read\n\nexamples:\n"
        "  agentha chaos recover\n  agentha chaos recover chaos-runs/stop-1\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    recover.add_argument("runs", nargs="*", type=Path, metavar="RUN_DIR_OR_JOURNAL")
    recover.set_defaults(run=run_recover)

    report = commands.add_parser(
        "report",
        help="write the reports of a run again from its run.json",
        description="Make junit.xml, summary.md and report.html again from a run's run.json.",
    )
    report.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    report.set_defaults(run=run_report)

    prune = commands.add_parser(
        "prune",
        help="delete run folders older than N days (never one with a fault still applied)",
        description="Delete chaos (or load) run folders older than N days from DIR. A run "
        "whose journal still holds an applied fault is kept: run 'agentha chaos recover' first.",
        epilog="examples:\n  agentha chaos prune --keep-days 30 --dry-run\n"
        "  agentha chaos prune load-runs --keep-days 7\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    prune.add_argument(
        "folder", nargs="?", type=Path, default=Path("chaos-runs"), metavar="DIR",
        help="the folder holding run folders (default chaos-runs)",
    )  # fmt: skip
    prune.add_argument(
        "--keep-days", type=whole(0, 36500), required=True, metavar="N", help="keep N days"
    )
    prune.add_argument("--dry-run", action="store_true", help="list, delete nothing")
    prune.set_defaults(run=run_prune)

    proxy = commands.add_parser(
        "proxy",
        help="run the TCP fault proxy (the 'proxy' driver's target) in front of agents",
        description="A TCP proxy with Toxiproxy-style faults, put between the load balancer "
        "and agents; the chaos 'proxy' driver drives it through its control API.",
        epilog="examples:\n  agentha chaos proxy --control 127.0.0.1:8474 \\\n"
        "      --route orders-1=127.0.0.1:19001,10.0.0.11:9443\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    proxy.add_argument(
        "--control", required=True, metavar="HOST:PORT", help="the control API's address"
    )
    proxy.add_argument(
        "--route",
        action="append",
        required=True,
        metavar="NAME=LISTEN,UPSTREAM",
        help="a route: NAME=LISTEN_HOST:PORT,UPSTREAM_HOST:PORT (repeatable)",
    )
    proxy.set_defaults(run=run_proxy)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "run"


def _out_dir(args: argparse.Namespace, experiment: Experiment) -> Path:
    if args.out is not None:
        return args.out
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    base = experiment.outputs.dir or Path("chaos-runs")
    return base / f"{_slug(experiment.title)}-{stamp}"


def _token(experiment: Experiment) -> str | None:
    name = experiment.monitor.token_env
    if name is None:
        return None
    value = os.environ.get(name)
    if not value:
        raise CommandError(
            f"{experiment.path}: monitor.token_env: environment variable {name} is not set",
            EXIT_ERROR,
        )
    return value


def run_experiment(args: argparse.Namespace) -> int:
    from chaos.controller import Options, dry_run, run_plan
    from chaos.errors import ChaosError
    from chaos.experiment import load_experiment
    from chaos.plan import make_plan

    try:
        experiment = load_experiment(args.experiment)
        out = _out_dir(args, experiment)
        if (out / "run.json").exists():
            raise CommandError(f"{out} already holds a run; choose another --out", EXIT_ERROR)
        plan = make_plan(experiment, out, args.seed)
        token = _token(experiment)
    except ChaosError as exc:
        raise CommandError(str(exc), EXIT_ERROR) from None
    if args.dry_run:
        return asyncio.run(dry_run(plan, token))
    if plan.profile == "production" and not args.yes:
        raise CommandError(
            f"{experiment.group} is in a production environment: add --yes to run faults on it "
            "(try --dry-run first)",
            EXIT_ABORTED,
        )
    live = sys.stdout.isatty()
    options = Options(out=out, say=lambda line: print(line, flush=True), live=live, token=token)
    print(f"agentha chaos: {experiment.title}; output in {out}", flush=True)
    try:
        record = asyncio.run(run_plan(plan, options))
    except ChaosError as exc:
        raise CommandError(str(exc), EXIT_ERROR) from None
    _write_reports(record, out, experiment.outputs.formats)
    for line in _verdict_lines(record):
        print(line)
    return int(record.exit_code if record.exit_code is not None else EXIT_ERROR)


def _write_reports(record, out: Path, formats) -> None:
    from chaos.reports import write_reports

    try:
        for path in write_reports(record, out, formats):
            print(f"report: {path}")
    except OSError as exc:
        print(f"agentha: error: cannot write the reports: {exc.strerror or exc}", file=sys.stderr)


def _verdict_lines(record) -> list[str]:
    lines = []
    for check in record.checks:
        mark = "PASS" if check.passed else "FAIL"
        detail = f" - {check.detail}" if check.detail and not check.passed else ""
        lines.append(f"{mark} {check.name}: {check.observed}{detail}")
    for window in record.faults:
        times = ", ".join(
            f"{label} {value:g} s" if value is not None else f"{label} -"
            for label, value in (
                ("detection", window.detection_s),
                ("failover", window.failover_s),
                ("recovery", window.recovery_s),
            )
        )
        lines.append(f"fault {window.description}: {times}")
    reason = f" ({record.reason})" if record.reason else ""
    lines.append(f"result: {record.verdict}{reason} (exit {record.exit_code})")
    return lines


def run_recover(args: argparse.Namespace) -> int:
    from chaos.errors import ChaosError
    from chaos.journal import active_journals
    from chaos.recover import journal_path, recover

    try:
        journals = [journal_path(p) for p in args.runs] if args.runs else active_journals()
    except ChaosError as exc:
        raise CommandError(str(exc), EXIT_ERROR) from None
    if not journals:
        print("agentha chaos recover: no run left faults applied")
        return 0
    failed = 0
    for path in journals:
        try:
            result = asyncio.run(recover(path, say=lambda line: print(line, flush=True)))
        except ChaosError as exc:
            print(f"agentha: error: {exc}", file=sys.stderr)
            failed += 1
            continue
        failed += len(result.failed)
        print(f"{path}: {len(result.reverted)} reverted, {len(result.failed)} failed")
    return 1 if failed else 0


def run_report(args: argparse.Namespace) -> int:
    from chaos.record import RunRecord

    path = args.run_dir / "run.json"
    try:
        record = RunRecord.read(path)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise CommandError(
            f"{path}: not a chaos run record ({type(exc).__name__})", EXIT_ERROR
        ) from None
    _write_reports(record, args.run_dir, ("json", "junit", "markdown", "html"))
    return 0


def run_proxy(args: argparse.Namespace) -> int:
    from chaos.proxy import ProxyError, serve_from_text

    try:
        serve_from_text(args.control, args.route)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    except ProxyError as exc:
        raise CommandError(str(exc), 1) from None
    return 0


def run_prune(args: argparse.Namespace) -> int:
    from chaos.errors import ChaosError
    from chaos.journal import JOURNAL, pending
    from monitor.retention import RetentionError, prune

    held = set()
    for journal in args.folder.glob(f"*/{JOURNAL}"):
        try:
            if pending(journal):
                held.add(journal.parent.name)
        except ChaosError:
            held.add(journal.parent.name)  # unreadable: keep it, a person should look
    try:
        done = prune(args.folder, args.keep_days, dry_run=args.dry_run, keep=frozenset(held))
    except RetentionError as exc:
        raise CommandError(str(exc)) from None
    for name in sorted(held):
        print(f"kept {args.folder / name}: faults may still be applied (agentha chaos recover)")
    verb = "would delete" if args.dry_run else "deleted"
    failed = 0
    for item in done:
        if item.error:
            failed += 1
            print(f"could not delete {item.path}: {item.error}")
        else:
            print(f"{verb} {item.path} ({item.age_days:.0f} days old)")
    return 1 if failed else 0
