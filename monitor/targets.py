"""From the inventory to what the probers need: one ``ProbeTarget`` per agent."""

from __future__ import annotations

from typing import Literal, cast

from monitor.inventory import Agent
from monitor.probes import ProbeTarget


def agent_target(agent: Agent) -> ProbeTarget:
    tls = agent.tls
    return ProbeTarget(
        id=agent.id,
        host=agent.host,
        port=agent.port,
        scheme=cast(Literal["https", "http"], "http" if agent.is_plaintext else "https"),
        server_name=tls.server_name or None,
        status_path=agent.status_path,
        api_key=agent.health_check_api_key.reveal() if agent.health_check_api_key else None,
        ca_bundle=str(tls.ca_bundle) if tls.ca_bundle else None,
        min_tls_version=cast(Literal["1.2", "1.3"], tls.min_version),
        expiry_warning_days=tls.expiry_warning_days,
        expiry_critical_days=tls.expiry_critical_days,
        plain_http_ports=agent.plain_http_ports,
    )
