"""The probers: one async function per kind, one shape, one table (``PROBERS``).

Every prober is ``async def probe(target, session, deadline) -> ProbeResult``: ``deadline`` is
event-loop time (``loop.time()``) by which the probe returns a result (``timeout`` if need be).
The scheduler keeps one :class:`ProbeSession` per target and applies its own hard deadline
around the call as a backstop. A prober never raises for the target's fault.

``entrypoint`` (an API call through the load balancer) and ``auth`` (an unauthenticated call
must get 401/403) are not here yet: they need the inventory's API checks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from .plaintext import probe_plaintext
from .result import (
    Details,
    PlaintextDetails,
    PortFinding,
    PortVerdict,
    ProbeResult,
    Reason,
    StatusDetails,
    TlsDetails,
)
from .session import ProbeSession
from .status import probe_status
from .target import ProbeTarget
from .tls import probe_tls

Prober = Callable[[ProbeTarget, ProbeSession, float], Awaitable[ProbeResult]]

PROBERS: dict[str, Prober] = {
    "status": probe_status,
    "tls": probe_tls,
    "plaintext": probe_plaintext,
}

__all__ = [
    "PROBERS",
    "Details",
    "PlaintextDetails",
    "PortFinding",
    "PortVerdict",
    "ProbeResult",
    "ProbeSession",
    "ProbeTarget",
    "Prober",
    "Reason",
    "StatusDetails",
    "TlsDetails",
    "probe_plaintext",
    "probe_status",
    "probe_tls",
]
