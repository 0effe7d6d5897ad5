"""`agentha demo`: placeholder until its module lands."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="(not yet available)")
    parser.set_defaults(run=lambda _args: 2)
