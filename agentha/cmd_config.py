"""`agentha config`: check an inventory file, print its JSON Schema."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from agentha.errors import CommandError

if TYPE_CHECKING:
    from monitor.problems import Problem

EXIT_VALID = 0
EXIT_FINDINGS = 1  # only with --strict
EXIT_INVALID = 2

CHECK_EPILOG = """\
Errors go to stderr, findings and the summary to stdout, one line each:

  error: inventory.yaml:14: environments[0].groups[0].agents[1].url: plain ... [plaintext-refused]
  finding: inventory.yaml:40: environments[1].groups[0].min_healthy: no ... [no-spare-agent]
  inventory.yaml: valid, 2 environments, 3 groups, 8 agents, 1 finding

Secrets are ${NAME} references read from the environment; their values are never printed.

exit codes:
  0  valid (findings are advisory)
  1  valid, but there are findings and --strict was given
  2  errors, or the file cannot be read

examples:
  agentha config check inventory.yaml
  ORDERS_API_KEY=... agentha config check --strict inventory.yaml
"""

SCHEMA_EPILOG = """\
examples:
  agentha config schema > inventory.schema.json
  # then, in the inventory file, for editors with the YAML language server:
  # yaml-language-server: $schema=inventory.schema.json
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    from agentha.cli import require_subcommand

    parser = subparsers.add_parser(
        "config",
        help="check an inventory file, print its JSON Schema",
        description="Work with the inventory: environments, agent groups and agents.",
        epilog="Run 'agentha config COMMAND --help' for the options of a command.",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=type(parser))
    parser.set_defaults(run=require_subcommand(parser))

    check = commands.add_parser(
        "check",
        help="validate an inventory file",
        description=(
            "Validate an inventory file: YAML syntax, every field, names, URLs, inheritance, "
            "the secrets policy. Reports every problem found, not only the first."
        ),
        epilog=CHECK_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("file", metavar="FILE", help="the inventory file (YAML)")
    check.add_argument(
        "--strict", action="store_true", help="exit with 1 when the file has findings"
    )
    check.set_defaults(run=run_check)

    schema = commands.add_parser(
        "schema",
        help="print the JSON Schema of the inventory file",
        description="Print the JSON Schema (draft 2020-12) of the inventory file, for editors.",
        epilog=SCHEMA_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    schema.set_defaults(run=run_schema)


def _line(kind: str, problem: Problem) -> str:
    return f"{kind}: {problem} [{problem.code}]"


def _count(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def run_check(args: argparse.Namespace) -> int:
    # Imported here: the inventory's models take a moment to build; `--help` need not wait.
    from monitor.errors import InventoryError
    from monitor.inventory import load_inventory

    try:
        inventory = load_inventory(args.file)
    except InventoryError as exc:
        if len(exc.problems) == 1 and exc.problems[0].code == "unreadable":
            raise CommandError(str(exc.problems[0]), EXIT_INVALID) from None
        for finding in exc.findings:
            print(_line("finding", finding))
        for problem in exc.problems:
            print(_line("error", problem), file=sys.stderr)
        summary = f"{args.file}: invalid, {_count(len(exc.problems), 'error')}"
        if exc.findings:
            summary += f", {_count(len(exc.findings), 'finding')}"
        print(summary, file=sys.stderr)
        return EXIT_INVALID
    for finding in inventory.findings:
        print(_line("finding", finding))
    summary = (
        f"{args.file}: valid, {inventory.summary()}, {_count(len(inventory.findings), 'finding')}"
    )
    if args.strict and inventory.findings:
        print(f"{summary} (--strict: findings fail the check)")
        return EXIT_FINDINGS
    print(summary)
    return EXIT_VALID


def run_schema(_args: argparse.Namespace) -> int:
    from monitor.inventory import inventory_json_schema

    print(json.dumps(inventory_json_schema(), indent=2))
    return EXIT_VALID
