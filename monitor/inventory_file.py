"""The inventory file as written: pydantic models, one per YAML mapping, extra keys refused.

These models check what one field (or one small mapping) can check alone. Rules that need
the whole file (duplicate names, inheritance, plaintext policy, shared secrets) live in
``monitor.inventory_rules``; the resolved, ready-to-use view is ``monitor.inventory``.
A field's default here is what applies when no level of the inheritance chain sets it.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)
from pydantic_core import PydanticCustomError

from monitor.secrets import Secret

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
NAME_MAX = 63
HEADER_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
METHODS_WITH_BODY = ("POST", "PUT", "PATCH")


def _name(value: str) -> str:
    if not NAME_RE.fullmatch(value) or len(value) > NAME_MAX:
        raise PydanticCustomError(
            "bad-name",
            "bad name; expected 1 to 63 lower case letters, digits, '-' or '_', "
            "starting with a letter or digit",
        )
    return value


def _url(value: str) -> str:
    # Never echo the URL: it may carry user:password.
    if "${" in value:
        raise PydanticCustomError(
            "bad-url", "${...} references are only allowed in secret fields; expected a URL"
        )
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise PydanticCustomError(
            "bad-url", "not a valid URL; expected https://HOST[:PORT]"
        ) from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise PydanticCustomError("bad-url", "not an absolute URL; expected https://HOST[:PORT]")
    if parts.username is not None or parts.password is not None:
        raise PydanticCustomError(
            "credentials-in-url",
            "credentials in a URL are not allowed; use the auth settings with ${NAME} references",
        )
    if parts.query or parts.fragment or value != value.strip():
        raise PydanticCustomError(
            "bad-url", "a base URL takes no query, fragment or spaces; expected https://HOST[:PORT]"
        )
    if port == 0:
        raise PydanticCustomError("bad-url", "port 0 is not valid; expected 1 to 65535")
    return value


def _https_url(value: str) -> str:
    _url(value)
    if urlsplit(value).scheme != "https":
        raise PydanticCustomError(
            "plaintext-refused",
            "credentials are sent here, so plain http:// is never allowed; expected https://",
        )
    return value


def _url_path(value: str) -> str:
    if not value.startswith("/") or any(c.isspace() for c in value) or "${" in value:
        raise PydanticCustomError(
            "bad-path", "expected a path starting with '/' and without spaces, e.g. /api/orders"
        )
    return value


def _header(value: str) -> str:
    if not HEADER_RE.fullmatch(value):
        raise PydanticCustomError(
            "bad-value", "not a valid HTTP header name; expected e.g. X-Api-Key"
        )
    return value


def _tls_version(value: Any) -> Any:
    # YAML reads an unquoted 1.2 as a number; accept it as the operator meant it.
    return str(value) if isinstance(value, float) else value


def _unique_ports(value: list[int]) -> list[int]:
    if len(set(value)) != len(value):
        raise PydanticCustomError("bad-value", "a port is listed twice; expected unique ports")
    return value


def _network(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise PydanticCustomError(
            "bad-value", "not an IP address or network; expected e.g. 10.0.0.0/8 or 127.0.0.1"
        ) from None
    return value


def _address(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise PydanticCustomError(
            "bad-value", "not an IP address; expected e.g. 127.0.0.2"
        ) from None
    return value


def _param_path(value: str) -> str:
    _url_path(value)
    if value.count("{param}") != 1:
        raise PydanticCustomError(
            "bad-path",
            "expected a path with one {param} where a path parameter goes, "
            "e.g. /api/orders/{param}",
        )
    return value


Name = Annotated[str, AfterValidator(_name)]
Url = Annotated[str, AfterValidator(_url)]
HttpsUrl = Annotated[str, AfterValidator(_https_url)]
UrlPath = Annotated[str, AfterValidator(_url_path)]
HeaderName = Annotated[str, AfterValidator(_header)]
Port = Annotated[int, Field(ge=1, le=65535)]
TlsVersion = Annotated[Literal["1.2", "1.3"], BeforeValidator(_tls_version)]


class FileModel(BaseModel):
    # strict: YAML already gives native types, so "8443" for a number is a mistake to report.
    model_config = ConfigDict(extra="forbid", strict=True, hide_input_in_errors=True)


class TlsSettings(FileModel):
    """TLS expectations for an agent; merged key by key through the defaults chain."""

    ca_bundle: str | None = Field(
        None,
        description=(
            "PEM file of CA certificates to trust instead of the system store. A relative "
            "path is relative to the inventory file's folder; the file must exist."
        ),
    )
    min_version: TlsVersion = Field(
        "1.2", description='Lowest TLS version accepted: "1.2" or "1.3".'
    )
    expiry_warning_days: int = Field(
        30, ge=1, description="Certificate expiry within this many days makes the agent degraded."
    )
    expiry_critical_days: int = Field(
        7, ge=0, description="Certificate expiry within this many days is critical; < warning."
    )
    server_name: str | None = Field(
        None,
        min_length=1,
        description="Host name the certificate must match; default: the host of the URL.",
    )


class AgentSettings(FileModel):
    """Settings an agent inherits: top-level defaults -> environment -> group -> agent."""

    status_path: UrlPath = Field("/frendsstatusinfo", description="Path of the status endpoint.")
    metrics_path: UrlPath | None = Field(
        None, description="Path of the Prometheus metrics endpoint, e.g. /metrics; null: none."
    )
    health_check_api_key: Secret | None = Field(
        None, description="Sent as header health-check-api-key to the status endpoint."
    )
    allow_plaintext: bool = Field(
        False,
        description="Accept http:// URLs (reported as a finding). For lab agents only.",
    )
    plain_http_ports: Annotated[list[Port], AfterValidator(_unique_ports)] = Field(
        default_factory=list,
        description="Ports on the agent host that must be closed or redirect to https.",
    )
    tls: TlsSettings = Field(default_factory=TlsSettings, description="TLS expectations.")


class ApiKeyAuth(FileModel):
    header: HeaderName = Field("X-Api-Key", description="Header that carries the key.")
    value: Secret = Field(description="The API key, as a ${NAME} reference.")


class OAuth2Auth(FileModel):
    token_url: HttpsUrl = Field(
        description="OAuth 2.0 token endpoint (client credentials grant); https only."
    )
    client_id: str = Field(min_length=1, description="Client id (not a secret).")
    client_secret: Secret = Field(description="Client secret, as a ${NAME} reference.")
    scope: str | None = Field(None, description="Space-separated scopes to request.")


class Auth(FileModel):
    """Exactly one of ``api_key`` or ``oauth2``."""

    api_key: ApiKeyAuth | None = Field(None, description="An API key sent in a header.")
    oauth2: OAuth2Auth | None = Field(
        None, description="OAuth 2.0 client credentials; the token is sent as a bearer token."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Auth:
        if (self.api_key is None) == (self.oauth2 is None):
            raise PydanticCustomError(
                "auth-choice",
                "expected exactly one of api_key or oauth2, found {found}",
                {"found": "both" if self.api_key else "neither"},
            )
        return self


HttpMethod = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
AuditClass = Literal["auth", "ip", "methods", "rate", "headers", "input"]
JsonType = Literal["string", "integer", "number", "boolean", "array", "object"]


class AuditRateLimit(FileModel):
    rps: float = Field(gt=0, le=100_000, description="Calls a second the API allows a client.")
    burst: int = Field(
        0, ge=0, le=10_000, description="Calls it allows at once above the rate (bucket size)."
    )


class AuditInput(FileModel):
    body_types: dict[str, JsonType] | None = Field(
        None,
        description=(
            "JSON type of each body field, e.g. {customer: string, qty: integer}: each field "
            "is sent once with a value of another type. For POST, PUT and PATCH checks."
        ),
    )
    path: Annotated[str, AfterValidator(_param_path)] | None = Field(
        None,
        description=(
            "A path below the entrypoint with one {param}, e.g. /api/orders/{param}: "
            "path traversal ('../', '%2e%2e%2f') is sent in its place."
        ),
    )


class AuditSettings(FileModel):
    """The security audit of an API check (`agentha audit`); a group's is the checks' default."""

    checks: dict[AuditClass, bool] = Field(
        default_factory=dict,
        description="Switch check classes on or off, e.g. {rate: false}; all on by default.",
    )
    methods_not_allowed: list[HttpMethod] | None = Field(
        None, description="Methods the API must refuse on the check's path (403 or 405)."
    )
    ip_allow: list[Annotated[str, AfterValidator(_network)]] | None = Field(
        None, description="Client addresses or networks the API accepts; others are refused."
    )
    audit_source: Annotated[str, AfterValidator(_address)] | None = Field(
        None,
        description="A local address outside ip_allow to send the IP filtering check from.",
    )
    rate_limit: AuditRateLimit | None = Field(
        None, description="The API's rate limit: a short burst past it must get 429."
    )
    input: AuditInput | None = Field(None, description="Input validation checks.")


class ApiCheck(FileModel):
    """An API call through the group's entrypoint, as a client makes it."""

    name: Name = Field(description="Unique within the group.")
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = Field(
        "GET", description="HTTP method."
    )
    path: UrlPath = Field(description="Path (and query) below the entrypoint; starts with '/'.")
    expect_status: int = Field(200, ge=100, le=599, description="Expected HTTP status.")
    body: dict[str, Any] | None = Field(None, description="JSON body, for POST, PUT and PATCH.")
    auth: Auth | None = Field(None, description="Credentials: exactly one of api_key, oauth2.")
    audit: AuditSettings | None = Field(
        None, description="Security audit settings; override the group's key by key."
    )

    @model_validator(mode="after")
    def _body_needs_method(self) -> ApiCheck:
        if self.body is not None and self.method not in METHODS_WITH_BODY:
            raise PydanticCustomError(
                "body-not-allowed",
                "a body is sent only with POST, PUT or PATCH, not {method}",
                {"method": self.method, "field": "body"},
            )
        return self


class AgentEntry(AgentSettings):
    """One Frends Agent; its id is ENV/GROUP/AGENT."""

    name: Name = Field(description="Unique within the group.")
    url: Url = Field(description="Base URL of the agent, https://HOST[:PORT].")


class GroupEntry(FileModel):
    name: Name = Field(description="Unique within the environment.")
    entrypoint: Url = Field(description="Load balancer or API Gateway Agent URL of the group.")
    min_healthy: int = Field(
        1, ge=1, description="Agents needed to carry the load; at most the number of agents."
    )
    defaults: AgentSettings | None = Field(None, description="Settings for this group's agents.")
    api_checks: list[ApiCheck] = Field(default_factory=list, description="API calls to check.")
    audit: AuditSettings | None = Field(
        None, description="Security audit settings for every API check of the group."
    )
    agents: list[AgentEntry] = Field(min_length=1, description="The agents of the group.")


class EnvironmentEntry(FileModel):
    name: Name = Field(description="Unique in the file.")
    profile: Literal["production", "staging", "test", "development"] = Field(
        "development", description="production gets errors-only logging and extra checks."
    )
    defaults: AgentSettings | None = Field(None, description="Settings for this environment.")
    groups: list[GroupEntry] = Field(min_length=1, description="Agent groups.")


class InventoryFile(FileModel):
    """An agentha inventory: environments -> agent groups -> agents."""

    model_config = ConfigDict(title="agentha inventory")

    version: Literal[1] = Field(description="Format version; must be 1.")
    defaults: AgentSettings | None = Field(None, description="Settings for every agent.")
    environments: list[EnvironmentEntry] = Field(min_length=1, description="The environments.")
