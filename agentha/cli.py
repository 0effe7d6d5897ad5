"""The ``agentha`` command: argument parsing and dispatch to the subcommand modules.

Every subcommand lives in its own ``cmd_*`` module with a ``register(subparsers)`` function
that adds its parser and sets ``run`` to a callable taking the parsed arguments and returning
an exit code. Errors the user can fix are printed as one line; nothing here prints a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from agentha import __version__
from agentha.errors import CommandError

# Subcommand modules, in the order `agentha --help` lists them.
COMMAND_MODULES = (
    "agentha.cmd_config",
    "agentha.cmd_monitor",
    "agentha.cmd_sim",
    "agentha.cmd_demo",
    "agentha.cmd_load",
    "agentha.cmd_lb",
    "agentha.cmd_tui",
    "agentha.cmd_chaos",
    "agentha.cmd_audit",
)

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 70


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line with a pointer to --help."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> Parser:
    parser = Parser(
        prog="agentha",
        description=(
            "High-availability monitor and chaos tester for Frends Agents. "
            "Validate an inventory, run a simulated agent fleet, or try it all with 'agentha demo'."
        ),
        epilog="Run 'agentha COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"agentha {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def require_subcommand(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    """A ``run`` for command groups: without a subcommand, show the group's help."""

    def run(_args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return EXIT_USAGE

    return run


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run = getattr(args, "run", None)
    if run is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(run(args) or 0)
    except CommandError as exc:
        print(f"agentha: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("agentha: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        # Last resort: one line, never a traceback (it could carry agent data or secrets).
        if os.environ.get("AGENTHA_DEBUG") == "1":
            raise
        print(
            f"agentha: internal error: {type(exc).__name__} (set AGENTHA_DEBUG=1 for details)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
