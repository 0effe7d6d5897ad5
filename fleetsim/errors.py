"""The fleet simulator's errors: one root, narrow subclasses, each a one-line message."""

from __future__ import annotations


class FleetError(Exception):
    """A problem starting or running the simulated fleet; the message is one line."""


class FleetSpecError(FleetError):
    """A fleet file (or --agents request) that cannot be run."""


class SecretPolicyError(FleetError):
    """A secret from the environment that breaks the policy; names the variable, never the value."""
