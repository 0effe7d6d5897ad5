"""Checks shared by the drivers' settings: each refuses bad input with a one-line
``ExperimentError`` naming the field (``drivers.NAME.FIELD``) and what was expected."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from chaos.errors import ExperimentError

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_TIMEOUT_S = 3600.0


def check_seconds(value: Any, where: str, *, high: float = MAX_TIMEOUT_S) -> float:
    """A positive number of seconds up to ``high``, or ``ExperimentError``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= high:
        raise ExperimentError(f"{where}: {value!r} is not valid; expected seconds in (0, {high:g}]")
    return float(value)


def check_env_names(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(
        isinstance(n, str) and NAME_RE.match(n) for n in value
    ):
        raise ExperimentError(f"{where}: expected a list of environment variable names")
    return list(value)


def check_keys(data: Any, allowed: Sequence[str], where: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ExperimentError(f"{where}: expected a mapping")
    for key in data:
        if key not in allowed:
            raise ExperimentError(
                f"{where}.{key}: unknown field; expected one of {', '.join(allowed)}"
            )
    return data


def agent_table(settings: Mapping[str, Any], where: str, expected: str) -> Mapping[str, Any]:
    """The driver's ``agents`` mapping, which must be there and not empty."""
    agents = settings.get("agents")
    if not isinstance(agents, Mapping) or not agents:
        raise ExperimentError(f"{where}.agents: missing or empty; expected {expected}")
    return agents
