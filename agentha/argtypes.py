"""Argument types for numbers on the command line: one message style for every command."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def seconds(low: float, high: float, *, above_low: bool = False) -> Callable[[str], float]:
    """Seconds in [low, high] (or (low, high] with ``above_low``)."""
    bound = f"{low} < seconds <= {high:g}" if above_low else f"{low:g} <= seconds <= {high:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a number of seconds, got {text!r}"
            ) from None
        if not (low < value if above_low else low <= value) or not value <= high:
            raise argparse.ArgumentTypeError(f"expected {bound}, got {text}")
        return value

    return parse


def whole(low: int, high: int | None = None) -> Callable[[str], int]:
    """A whole number from ``low`` (up to ``high`` when given)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low or (high is not None and value > high):
            wanted = f"at least {low}" if high is None else f"{low} to {high}"
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {value}")
        return value

    return parse
