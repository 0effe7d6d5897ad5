"""The probers: one async function per kind, one shape, one table (``PROBERS``).

Every prober is ``async def probe(target, session, deadline) -> ProbeResult``: ``deadline`` is
event-loop time (``loop.time()``) by which the probe returns a result (``timeout`` if need be).
The scheduler keeps one :class:`ProbeSession` per target and applies its own hard deadline
around the call as a backstop. A prober never raises for the target's fault.

Agent probers (``AGENT_PROBERS``: status, tls, plaintext) take a :class:`ProbeTarget`; API
check probers (``API_CHECK_PROBERS``: entrypoint, auth) take an :class:`ApiCheckTarget`.
``auth`` applies only to checks with credentials.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from .auth import probe_auth
from .entrypoint import probe_entrypoint
from .plaintext import probe_plaintext
from .result import (
    ApiCallDetails,
    Details,
    PlaintextDetails,
    PortFinding,
    PortVerdict,
    ProbeResult,
    Reason,
    StatusDetails,
    TlsDetails,
    TokenUse,
)
from .session import ProbeSession
from .status import probe_status
from .target import ApiCheckTarget, ApiKeyCredentials, OAuth2Credentials, ProbeTarget
from .tls import probe_tls

# The target is a ProbeTarget for the agent probers, an ApiCheckTarget for the API check ones.
Prober = Callable[[Any, ProbeSession, float], Awaitable[ProbeResult]]

PROBERS: dict[str, Prober] = {
    "status": probe_status,
    "tls": probe_tls,
    "plaintext": probe_plaintext,
    "entrypoint": probe_entrypoint,
    "auth": probe_auth,
}
AGENT_PROBERS = frozenset({"status", "tls", "plaintext"})
API_CHECK_PROBERS = frozenset({"entrypoint", "auth"})

__all__ = [
    "AGENT_PROBERS",
    "API_CHECK_PROBERS",
    "PROBERS",
    "ApiCallDetails",
    "ApiCheckTarget",
    "ApiKeyCredentials",
    "Details",
    "OAuth2Credentials",
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
    "TokenUse",
    "probe_auth",
    "probe_entrypoint",
    "probe_plaintext",
    "probe_status",
    "probe_tls",
]
