"""What a prober needs to know about one agent or one API check, decoupled from the inventory.

Secret values (API keys, client secrets) are plain strings here, kept out of ``repr``; the
adapter that builds targets from the inventory is the one place that reveals them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit


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
        return host_header(self.expected_name, port)


def host_header(name: str, port: int) -> str:
    """``name:port`` for a Host header, an IPv6 literal in brackets."""
    return f"[{name}]:{port}" if ":" in name else f"{name}:{port}"


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # an HTTP token: method, header name
_FIELD_VALUE = re.compile(r"[\x20-\x7e]+")  # printable ASCII: a header value we send
_PATH = re.compile(r"/[\x21-\x7e]*")  # a request target: no spaces, no control characters


@dataclass(frozen=True, slots=True)
class ApiKeyCredentials:
    """An API key sent in the request header ``header``."""

    header: str
    value: str = field(repr=False)

    def __post_init__(self) -> None:
        if not _TOKEN.fullmatch(self.header):
            raise ValueError("api key header is not a valid HTTP header name")
        if not _FIELD_VALUE.fullmatch(self.value):  # the message must not quote the value
            raise ValueError("api key value must be printable ASCII")


@dataclass(frozen=True, slots=True)
class OAuth2Credentials:
    """OAuth 2.0 client credentials; the token endpoint is verified against ``ca_bundle``.

    ``ca_bundle`` is separate from the API's: a token endpoint is often a public identity
    provider while the entrypoint carries an internal CA's certificate. None: system trust.
    """

    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    scope: str | None = None
    ca_bundle: str | None = None

    def __post_init__(self) -> None:
        parts = urlsplit(self.token_url)
        if parts.scheme != "https" or not parts.hostname or parts.username or parts.password:
            raise ValueError("token_url must be an https:// URL without credentials")
        if not self.client_id or not self.client_secret:
            raise ValueError("client_id and client_secret must not be empty")


Credentials = ApiKeyCredentials | OAuth2Credentials


@dataclass(frozen=True, slots=True)
class ApiCheckTarget:
    """One API check of a group, called through the group's entrypoint as a client calls it.

    ``path`` is the full request path (and query), the entrypoint URL's own path included.
    ``body`` is sent as JSON; it is left out of ``repr`` and of hashing (a dict is mutable).
    """

    group: str  # ENV/GROUP
    check: str  # the check's name, unique within the group
    host: str
    port: int
    path: str
    scheme: Literal["https", "http"] = "https"
    server_name: str | None = None  # expected certificate host name; None: the host
    method: str = "GET"
    expect_status: int = 200
    body: Mapping[str, Any] | None = field(default=None, repr=False, hash=False)
    ca_bundle: str | None = None  # PEM file; None: the system trust store
    min_tls_version: Literal["1.2", "1.3"] = "1.2"
    auth: Credentials | None = None

    def __post_init__(self) -> None:
        if not _TOKEN.fullmatch(self.method) or self.method != self.method.upper():
            raise ValueError(f"method {self.method!r} is not an upper-case HTTP token")
        if not _PATH.fullmatch(self.path):
            raise ValueError(f"path {self.path!r} must start with '/' and hold no spaces")
        if not 100 <= self.expect_status <= 599:
            raise ValueError(f"expect_status {self.expect_status} is not an HTTP status")
        if self.auth is not None and self.scheme != "https":
            raise ValueError("credentials are sent only over https")

    @property
    def id(self) -> str:
        """``ENV/GROUP:CHECK``: never equal to an agent's ``ENV/GROUP/AGENT``."""
        return f"{self.group}:{self.check}"

    @property
    def expected_name(self) -> str:
        """The host name the certificate must match and the Host header carries."""
        return self.server_name or self.host
