"""`agentha audit`: the security audit of the inventory's API checks, once, with reports."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from agentha.argtypes import whole
from agentha.errors import CommandError

EXIT_FINDINGS = 1
EXIT_NOT_RUN = 2

EPILOG = """\
Each API check of the chosen groups is called through the group's entrypoint with requests
an API must refuse: without or with wrong credentials (auth), from an address outside
ip_allow (ip), with methods it must not take (methods), with faulty headers (headers), with
invalid input (input), and with a short burst past its rate limit (rate). The requests are
capped (300 per group at most) and stated in the reports; payloads are synthetic. The
inventory's audit sections say what to expect (docs/audit.md).

Reports go to a new folder DIR/audit-YYYYmmddTHHMMSSZ: audit.json, audit.xml (JUnit),
audit.md. Exit status: 0 every check passed, 1 a check found a problem, 2 bad input or a
check could not run.

An environment with the production profile is audited only with --yes.

examples:
  agentha audit -c inventory.yaml --group test/orders
  agentha audit -c inventory.yaml --out reports --format junit --keep-days 30
  agentha audit -c inventory.yaml --group prod/orders --yes
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "audit",
        help="audit the security of the groups' APIs (auth, IP, methods, headers, input, rate)",
        description="Audit the security of the inventory's API checks once and write reports.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-c", "--config", required=True, type=Path, metavar="FILE", help="inventory file"
    )
    parser.add_argument("--group", metavar="ENV/GROUP", help="audit only this group")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("audit-reports"),
        metavar="DIR",
        help="reports folder; each run writes a new folder inside (default audit-reports)",
    )
    parser.add_argument(
        "--format",
        default="json,junit,markdown",
        metavar="LIST",
        help="report formats, comma-separated: json, junit, markdown (default all)",
    )
    parser.add_argument(
        "--yes",
        action="store_true",
        help="also audit environments with the production profile",
    )
    parser.add_argument(
        "--keep-days",
        type=whole(0, 3650),
        metavar="N",
        help="afterwards, delete audit runs in DIR older than N days (default: keep all)",
    )
    parser.set_defaults(run=run)


def _formats(text: str) -> list[str]:
    from monitor.audit.reports import FORMATS

    chosen = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in chosen if name not in FORMATS]
    if unknown or not chosen:
        raise CommandError(
            f"--format {text!r}: expected a comma-separated list of {', '.join(FORMATS)}"
        )
    return list(dict.fromkeys(chosen))


def run(args: argparse.Namespace) -> int:
    from monitor.audit.reports import write_reports
    from monitor.audit.runner import audit_group, select_groups
    from monitor.errors import InventoryError
    from monitor.inventory import load_inventory
    from monitor.retention import RetentionError, prune

    formats = _formats(args.format)
    try:
        inventory = load_inventory(args.config)
    except InventoryError as exc:
        raise CommandError(str(exc)) from None
    try:
        groups = select_groups(inventory, args.group)
    except KeyError:
        known = ", ".join(group.id for _env, group in inventory.groups())
        raise CommandError(
            f"--group {args.group!r}: no such group; expected one of {known}"
        ) from None
    production = sorted({env.name for env, _group in groups if env.is_production})
    if production and not args.yes:
        raise CommandError(
            f"environment {production[0]!r} has the production profile: the audit sends "
            "unauthenticated, faulty and bursting requests to its APIs; add --yes to go ahead"
        )
    with_checks = [(env, group) for env, group in groups if group.api_checks]
    for _env, group in groups:
        if not group.api_checks:
            print(f"{group.id}: no API checks, nothing to audit")
    if not with_checks:
        raise CommandError("no group with API checks to audit")

    folder = args.out / time.strftime("audit-%Y%m%dT%H%M%SZ", time.gmtime())
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandError(f"--out {args.out}: {exc.strerror or exc}") from None

    async def audit_all() -> list:
        audits = []
        for env, group in with_checks:
            audit = await audit_group(env, group)
            _print_group(audit)
            audits.append(audit)
        return audits

    audits = asyncio.run(audit_all())
    try:
        written = write_reports(audits, folder, str(args.config), formats)
    except OSError as exc:
        raise CommandError(f"--out {args.out}: cannot write the reports: {exc.strerror}") from None
    print(f"reports: {', '.join(str(p) for p in written)}")
    if args.keep_days is not None:
        try:
            pruned = prune(args.out, args.keep_days, keep=frozenset({folder.name}))
        except RetentionError as exc:
            raise CommandError(str(exc)) from None
        for item in pruned:
            if item.deleted:
                print(f"retention: deleted {item.path} ({item.age_days:.0f} days old)")
            else:
                print(f"retention: could not delete {item.path}: {item.error}", file=sys.stderr)
    if any(a.failed for a in audits):
        return EXIT_FINDINGS
    if any(a.errored for a in audits):
        return EXIT_NOT_RUN
    return 0


def _print_group(audit) -> None:
    from monitor.audit.result import Status

    counts = {s: audit.count(s) for s in Status}
    print(
        f"{audit.id}: {len(audit.results)} checks: {counts[Status.PASS]} passed, "
        f"{counts[Status.FAIL]} failed, {counts[Status.ERROR]} could not run, "
        f"{counts[Status.SKIPPED]} skipped; {audit.requests} requests (cap {audit.request_cap})"
    )
    for r in audit.results:
        if r.status is Status.FAIL:
            print(f"  FAIL  {r.check} {r.audit_class.value}: {r.finding.value}: {r.message}")
        elif r.status is Status.ERROR:
            print(f"  ERROR {r.check} {r.audit_class.value}: {r.message}")
