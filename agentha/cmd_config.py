"""`agentha config`: placeholder until its module lands."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("config", help="(not yet available)")
    parser.set_defaults(run=lambda _args: 2)
