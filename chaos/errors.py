"""The chaos package's errors: one root, a narrow subclass for each way a run cannot go on."""

from __future__ import annotations


class ChaosError(Exception):
    """Root of every error raised by ``chaos``; the message is one line for the user."""


class ExperimentError(ChaosError):
    """The experiment file (or a flag) is wrong: the message names the file, line and field."""


class DriverError(ChaosError):
    """A fault driver could not inject or revert (unreachable control API, command failed...)."""
