"""The fault drivers by name, imported only when an experiment uses them.

``DRIVERS`` maps the name used in experiments (``drivers: {NAME: {...}}`` and each fault's
``driver``) to ``"module:Class"``; ``make_driver(name, settings)`` builds one. Drivers
whose settings are per agent share ``agent_settings`` to find an agent's entry.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from chaos.errors import ExperimentError
from chaos.faults import Driver

__all__ = ["DRIVERS", "agent_settings", "driver_class", "make_driver", "split_agent"]

DRIVERS: dict[str, str] = {
    "fleetsim": "chaos.drivers.fleetsim:FleetsimDriver",
    "signal": "chaos.drivers.signals:SignalDriver",
    "command": "chaos.drivers.command:CommandDriver",
    "proxy": "chaos.drivers.proxy:ProxyDriver",
    "netns": "chaos.drivers.netns:NetnsDriver",
}


def driver_class(name: str) -> type[Driver]:
    """The driver class registered as ``name`` (``ExperimentError`` for an unknown one)."""
    target = DRIVERS.get(name)
    if target is None:
        raise ExperimentError(
            f"unknown driver {name!r}; expected one of {', '.join(sorted(DRIVERS))}"
        )
    module_name, _, class_name = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ExperimentError(f"driver {name!r} cannot be loaded: {exc}") from None
    return cls


def make_driver(name: str, settings: Mapping[str, Any]) -> Driver:
    """A driver built from its experiment settings (checked: ``ExperimentError``)."""
    return driver_class(name)(settings)


def split_agent(agent: str) -> tuple[str, str, str]:
    """ENV/GROUP/AGENT as three parts, or ``ExperimentError``."""
    parts = agent.split("/")
    if len(parts) != 3 or not all(parts):
        raise ExperimentError(f"agent {agent!r}: expected ENV/GROUP/AGENT")
    return parts[0], parts[1], parts[2]


def agent_settings(driver: str, agents: Mapping[str, Any], agent: str) -> Mapping[str, Any]:
    """The entry for ``agent`` (ENV/GROUP/AGENT) in a driver's ``agents`` settings.

    Keys are full ids or bare agent names; a full id wins over a name.
    """
    if agent in agents:
        return agents[agent]
    name = agent.rsplit("/", 1)[-1]
    if name in agents:
        return agents[name]
    raise ExperimentError(
        f"drivers.{driver}.agents: no entry for {agent!r}; expected its id or its name "
        f"(configured: {', '.join(sorted(agents)) or 'none'})"
    )
