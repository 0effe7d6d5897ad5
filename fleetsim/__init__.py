"""A simulated Frends agent fleet: virtual agents with real TLS on loopback, an API Gateway
Agent per group, and a control API to pause, stop, hang or break any agent at run time.

It imports nothing from the rest of agentha: it stands in for real agents.
"""

from typing import TYPE_CHECKING, Any

from fleetsim.errors import FleetError, FleetSpecError, SecretPolicyError
from fleetsim.fleetspec import DEFAULT_BASE, FleetSpec, load, load_demo, parse_base, quick

if TYPE_CHECKING:
    from fleetsim.runner import RunningFleet, SimOptions, running_fleet

_LAZY = {"RunningFleet", "SimOptions", "running_fleet"}


def __getattr__(name: str) -> Any:
    # The runner pulls in aiohttp and the servers: loaded on first use, so that reading a
    # fleet file (and `agentha --help`) stays quick.
    if name in _LAZY:
        from fleetsim import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'fleetsim' has no attribute {name!r}")


__all__ = [
    "DEFAULT_BASE",
    "FleetError",
    "FleetSpec",
    "FleetSpecError",
    "RunningFleet",
    "SecretPolicyError",
    "SimOptions",
    "load",
    "load_demo",
    "parse_base",
    "quick",
    "running_fleet",
]
