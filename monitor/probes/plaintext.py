"""The plaintext prober: TLS-only enforcement.

Plain HTTP sent to the TLS port must get no HTTP answer at all (any valid HTTP response there
is ``plaintext_served``), and every configured plain-HTTP port must be closed or answer only
with a redirect to an ``https://`` location (anything else is ``http_port_open``).
"""

from __future__ import annotations

import asyncio

from .failures import TARGET_FAULTS
from .httpclient import connect
from .result import PlaintextDetails, PortFinding, PortVerdict, ProbeResult, ProbeRun, Reason
from .session import ProbeSession
from .target import ProbeTarget


async def plain_http_finding(target: ProbeTarget, port: int, deadline: float) -> PortFinding:
    """What ``port`` does with a plain ``GET`` of the status path; only the head is read."""
    try:
        async with asyncio.timeout_at(deadline):
            conn = await connect(target.host, port)
            try:
                response = await conn.request(
                    "GET",
                    target.status_path,
                    target.host_header(port),
                    [("Connection", "close")],
                    head_only=True,
                )
            finally:
                conn.close()
    except ConnectionRefusedError:
        return PortFinding(port, PortVerdict.CLOSED)
    except TARGET_FAULTS:  # a TLS alert, a close, a reset, silence: no HTTP was served
        return PortFinding(port, PortVerdict.SILENT)
    location = response.header("location")
    redirect = 300 <= response.status < 400 and location is not None
    if redirect and location.lower().startswith("https://"):
        return PortFinding(port, PortVerdict.REDIRECTS_HTTPS, response.status, location)
    return PortFinding(port, PortVerdict.SERVES_HTTP, response.status, location)


async def probe_plaintext(
    target: ProbeTarget, session: ProbeSession, deadline: float
) -> ProbeResult:
    """Check the TLS port and every plain-HTTP port, concurrently, by ``deadline``."""
    run = ProbeRun("plaintext", target.id)
    if target.scheme != "https":
        return run.finish(Reason.NOT_HTTPS)
    tls_port, *http_ports = await asyncio.gather(
        plain_http_finding(target, target.port, deadline),
        *(plain_http_finding(target, port, deadline) for port in target.plain_http_ports),
    )
    details = PlaintextDetails(tls_port, tuple(http_ports))
    if tls_port.verdict in (PortVerdict.SERVES_HTTP, PortVerdict.REDIRECTS_HTTPS):
        return run.finish(
            Reason.PLAINTEXT_SERVED,
            http_status=tls_port.http_status,
            details=details,
            port=tls_port.port,
        )
    served = [p for p in http_ports if p.verdict is PortVerdict.SERVES_HTTP]
    if served:
        return run.finish(
            Reason.HTTP_PORT_OPEN,
            http_status=served[0].http_status,
            details=details,
            port=served[0].port,
            ports_open=len(served),
        )
    return run.finish(Reason.OK, details=details)
