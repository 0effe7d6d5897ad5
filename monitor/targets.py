"""From the inventory to what the probers need: a target per agent and per API check."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from typing import Literal, cast
from urllib.parse import urlsplit

from monitor.inventory import Agent, ApiCheck, Group, TlsPolicy
from monitor.payloads import parse_body, parse_template
from monitor.probes import ProbeTarget
from monitor.probes.target import (
    ApiCheckTarget,
    ApiKeyCredentials,
    Credentials,
    OAuth2Credentials,
)


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
        ca_bundle=_ca(tls),
        min_tls_version=cast(Literal["1.2", "1.3"], tls.min_version),
        expiry_warning_days=tls.expiry_warning_days,
        expiry_critical_days=tls.expiry_critical_days,
        plain_http_ports=agent.plain_http_ports,
    )


def check_target(group: Group, check: ApiCheck) -> ApiCheckTarget:
    """An API check, called through the group's entrypoint with the group's TLS settings."""
    parts = urlsplit(group.entrypoint)
    tls = group.tls
    auth: Credentials | None = None
    if check.auth is not None and check.auth.api_key is not None:
        auth = ApiKeyCredentials(check.auth.api_key.header, check.auth.api_key.value.reveal())
    elif check.auth is not None and check.auth.oauth2 is not None:
        oauth = check.auth.oauth2
        auth = OAuth2Credentials(
            token_url=oauth.token_url,
            client_id=oauth.client_id,
            client_secret=oauth.client_secret.reveal(),
            scope=oauth.scope,
            ca_bundle=_ca(tls),
        )
    return ApiCheckTarget(
        group=group.id,
        check=check.name,
        host=parts.hostname or "",
        port=parts.port or (443 if parts.scheme == "https" else 80),
        path=parts.path.rstrip("/") + check.path,
        scheme=cast(Literal["https", "http"], parts.scheme),
        server_name=tls.server_name or None if tls else None,
        method=check.method,
        expect_status=check.expect_status,
        body=check.body,
        ca_bundle=_ca(tls),
        min_tls_version=cast(Literal["1.2", "1.3"], tls.min_version if tls else "1.2"),
        auth=auth,
    )


def _ca(tls: TlsPolicy | None) -> str | None:
    return str(tls.ca_bundle) if tls is not None and tls.ca_bundle else None


def check_filler(target: ApiCheckTarget) -> Callable[[], ApiCheckTarget] | None:
    """Fills the check's placeholders ({int:1-50}, {uuid}...) afresh for every call, as the
    load runs do; None when there are none. The inventory has validated them already."""
    path = parse_template(target.path, "path")
    body = parse_body(target.body, "body") if target.body is not None else None
    if path.is_constant and (body is None or body.is_constant):
        return None
    rng = random.Random()  # noqa: S311 - synthetic test data, not a secret

    def fill() -> ApiCheckTarget:
        return dataclasses.replace(
            target,
            path=path.render(rng),
            body=body.render(rng) if body is not None else None,
        )

    return fill
