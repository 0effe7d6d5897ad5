"""A simulated Frends agent fleet: virtual agents with real TLS on loopback, an API Gateway
Agent per group, and a control API to pause, stop, hang or break any agent at run time.

It imports nothing from the rest of agentha: it stands in for real agents.
"""

from fleetsim.errors import FleetError, FleetSpecError, SecretPolicyError
from fleetsim.fleetspec import DEFAULT_BASE, FleetSpec, load, load_demo, parse_base, quick
from fleetsim.runner import RunningFleet, SimOptions, running_fleet

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
