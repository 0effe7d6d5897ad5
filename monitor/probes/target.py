"""What a prober needs to know about one agent, decoupled from the inventory's models."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    """One agent endpoint. ``api_key`` is kept out of ``repr`` so it never reaches a log."""

    id: str  # ENV/GROUP/AGENT
    host: str
    port: int
    scheme: Literal["https", "http"] = "https"
    server_name: str | None = None  # expected certificate host name; None: the host
    status_path: str = "/frendsstatusinfo"
    api_key: str | None = field(default=None, repr=False)
    ca_bundle: str | None = None  # PEM file; None: the system trust store
    min_tls_version: Literal["1.2", "1.3"] = "1.2"
    expiry_warning_days: int = 30
    expiry_critical_days: int = 7
    plain_http_ports: tuple[int, ...] = ()

    @property
    def expected_name(self) -> str:
        """The host name the certificate must match and the Host header carries."""
        return self.server_name or self.host

    @property
    def host_header(self) -> str:
        default_port = 443 if self.scheme == "https" else 80
        name = self.expected_name
        if ":" in name:  # an IPv6 literal
            name = f"[{name}]"
        return name if self.port == default_port else f"{name}:{self.port}"
