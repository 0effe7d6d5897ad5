"""What a load test calls, taken from one group of the inventory: its entrypoint and API checks.

``load_plan`` reads the inventory with ``monitor.inventory`` (pure: pydantic and YAML, no
asyncio, safe under gevent's monkey-patching) and keeps what the Locust users need. Secrets
stay ``Secret`` objects read from this process's environment, revealed only when a request
is sent; nothing here writes them anywhere.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from loadtests.errors import LoadConfigError
from monitor.errors import InventoryError
from monitor.inventory import Group, Inventory, load_inventory
from monitor.payloads import BodyTemplate, Template, parse_body, parse_template
from monitor.secrets import Secret

# The label of OAuth2 token fetches in Locust's statistics and the timeline.
TOKEN_ENDPOINT = "oauth2-token"  # noqa: S105 - an endpoint label, not a secret


@dataclass(frozen=True)
class ApiKey:
    header: str
    secret: Secret


@dataclass(frozen=True)
class OAuth2:
    token_url: str
    client_id: str
    secret: Secret
    scope: str | None


@dataclass(frozen=True)
class Endpoint:
    """One API check as load: ``name`` is its label in Locust and in the timeline."""

    name: str
    method: str
    path: Template
    expect_status: int
    body: BodyTemplate | None
    auth: ApiKey | OAuth2 | None


@dataclass(frozen=True)
class LoadPlan:
    group: str  # ENV/GROUP
    base_url: str  # the group's entrypoint, without a trailing slash
    ca_file: str | None  # None: the system's trust store
    min_tls: str  # "1.2" or "1.3"
    endpoints: tuple[Endpoint, ...]


def find_group(inventory: Inventory, group_id: str) -> Group:
    for _env, group in inventory.groups():
        if group.id == group_id:
            return group
    known = ", ".join(group.id for _env, group in inventory.groups())
    raise LoadConfigError(f"{inventory.path}: no group {group_id!r}; expected one of {known}")


def default_group(inventory: Inventory) -> str:
    """The inventory's only group with API checks; otherwise the user must choose."""
    candidates = [group.id for _env, group in inventory.groups() if group.api_checks]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise LoadConfigError(f"{inventory.path}: no group has api_checks, so nothing to call")
    raise LoadConfigError(
        f"{inventory.path}: several groups have api_checks; choose one with --group "
        f"({', '.join(candidates)})"
    )


def read_inventory(path: Path, environ: Mapping[str, str] | None = None) -> Inventory:
    """``load_inventory`` with its problems folded into one ``LoadConfigError`` line."""
    try:
        return load_inventory(path, os.environ if environ is None else environ)
    except InventoryError as exc:
        first = exc.problems[0] if exc.problems else "invalid inventory"
        more = len(exc.problems) - 1
        tail = f" (and {more} more: run 'agentha config check {path}')" if more > 0 else ""
        raise LoadConfigError(f"{first}{tail}") from None


def plan_for(group: Group, where: str) -> LoadPlan:
    if not group.api_checks:
        raise LoadConfigError(
            f"{where}: group {group.id} has no api_checks, so there is nothing to call; "
            "add api_checks to the group"
        )
    endpoints = []
    for index, check in enumerate(group.api_checks):
        at = f"{where}: group {group.id}, api_checks[{index}] ({check.name})"
        auth: ApiKey | OAuth2 | None = None
        if check.auth is not None and check.auth.api_key is not None:
            auth = ApiKey(check.auth.api_key.header, check.auth.api_key.value)
        elif check.auth is not None and check.auth.oauth2 is not None:
            oauth = check.auth.oauth2
            auth = OAuth2(oauth.token_url, oauth.client_id, oauth.client_secret, oauth.scope)
        endpoints.append(
            Endpoint(
                name=check.name,
                method=check.method,
                path=parse_template(check.path, f"{at}.path"),
                expect_status=check.expect_status,
                body=None if check.body is None else parse_body(check.body, f"{at}.body"),
                auth=auth,
            )
        )
    tls = group.tls
    return LoadPlan(
        group=group.id,
        base_url=group.entrypoint.rstrip("/"),
        ca_file=str(tls.ca_bundle) if tls is not None and tls.ca_bundle else None,
        min_tls=tls.min_version if tls is not None else "1.2",
        endpoints=tuple(endpoints),
    )


def load_plan(
    path: str | os.PathLike[str], group_id: str, environ: Mapping[str, str] | None = None
) -> LoadPlan:
    """The plan for group ``ENV/GROUP`` of the inventory at ``path``."""
    path = Path(path)
    inventory = read_inventory(path, environ)
    return plan_for(find_group(inventory, group_id), str(path))
