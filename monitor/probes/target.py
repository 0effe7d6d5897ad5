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

    def host_header(self, port: int) -> str:
        """The Host header for a request to ``port`` (always explicit: valid on any port)."""
        name = self.expected_name
        return f"[{name}]:{port}" if ":" in name else f"{name}:{port}"  # [...]: IPv6 literal
