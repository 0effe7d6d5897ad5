"""The load-test package's errors: one root, a narrow subclass for each way a run can't start."""

from __future__ import annotations


class LoadError(Exception):
    """Root of every error raised by ``loadtests``; the message is one line for the user."""


class LoadConfigError(LoadError):
    """Bad input: a shape, a threshold, an inventory group or a template the user can fix."""


class LoadRunError(LoadError):
    """Locust could not run (it failed to start, crashed, or wrote no timeline)."""
