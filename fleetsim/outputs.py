"""Files a running fleet writes for its clients: fleet.json (last, atomically), the control
token, ca.pem, secrets.env and a matching inventory.yaml."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

from fleetsim.credentials import EnvSecrets, shell_line
from fleetsim.fleetspec import FleetSpec
from fleetsim.gateway_guard import RATE_LIMIT_BURST, RATE_LIMIT_RPS

FLEET_JSON = "fleet.json"
TOKEN_FILE = "control-token"  # noqa: S105 - a file name, not a secret
CA_FILE = "ca.pem"
SECRETS_FILE = "secrets.env"
INVENTORY_FILE = "inventory.yaml"


def _write(path: Path, text: str, mode: int) -> None:
    """Write through a temporary file and rename; the file is never readable by others."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, mode)  # O_CREAT's mode is filtered by the umask and ignored for old files
    os.replace(tmp, path)


def write_all(
    directory: Path,
    *,
    spec: FleetSpec,
    control_url: str,
    token: str,
    ca_pem: str,
    secrets: dict[str, EnvSecrets],
    agents: list[dict[str, Any]],
    gateways: list[dict[str, Any]],
    workers: int,
) -> Path:
    """Write every file into ``directory``; returns the path of fleet.json, written last."""
    directory.mkdir(parents=True, exist_ok=True)
    directory = directory.resolve()
    _write(directory / TOKEN_FILE, token + "\n", 0o600)
    _write(directory / CA_FILE, ca_pem, 0o644)
    lines = [
        "# Secrets of the simulated fleet, referenced by inventory.yaml.",
        "# Load into a shell with: set -a; . ./secrets.env; set +a",
    ]
    lines += [shell_line(n, v) for s in secrets.values() for n, v in s.variables().items()]
    _write(directory / SECRETS_FILE, "\n".join(lines) + "\n", 0o600)
    _write(directory / INVENTORY_FILE, inventory_yaml(spec, secrets, agents, gateways), 0o644)
    fleet = {
        "version": 1,
        "pid": os.getpid(),
        "control_url": control_url,
        "token_file": str(directory / TOKEN_FILE),
        "ca_file": str(directory / CA_FILE),
        "secrets_file": str(directory / SECRETS_FILE),
        "inventory_file": str(directory / INVENTORY_FILE),
        "workers": workers,
        "environments": [
            {
                "name": env.name,
                "profile": env.profile,
                "client_id": secrets[env.name].client_id,
                "api_key_var": secrets[env.name].api_key_var,
                "client_secret_var": secrets[env.name].client_secret_var,
                "hc_key_var": secrets[env.name].hc_key_var,
            }
            for env in spec.environments
        ],
        "gateways": [{k: g[k] for k in ("id", "env", "group", "url", "agents")} for g in gateways],
        "agents": [
            {
                k: a[k]
                for k in ("id", "env", "group", "name", "address", "port", "url", "plain_http_port")
            }
            for a in agents
        ],
    }
    path = directory / FLEET_JSON
    _write(path, json.dumps(fleet, indent=2) + "\n", 0o644)
    return path


def remove_ready_marker(directory: Path) -> None:
    """fleet.json means "running": take it away when the fleet stops."""
    (directory / FLEET_JSON).unlink(missing_ok=True)


# Auth blocks are built fresh for each check: shared mappings would be written as &anchors.


def _api_key(env: EnvSecrets) -> dict[str, Any]:
    return {"api_key": {"header": "X-Api-Key", "value": f"${{{env.api_key_var}}}"}}


def _oauth2(env: EnvSecrets, gateway_url: str) -> dict[str, Any]:
    return {
        "oauth2": {
            "token_url": f"{gateway_url}/oauth/token",
            "client_id": env.client_id,
            "client_secret": f"${{{env.client_secret_var}}}",
        }
    }


# What secure fleetsim agents and gateways enforce, for `agentha audit` (docs/audit.md):
# API calls from 127.0.0.1 only, 405 for other methods on the orders API, the gateway's rate
# limit (gateway_guard), typed order bodies and the order id as the path parameter.
AUDIT: dict[str, Any] = {
    "methods_not_allowed": ["DELETE", "PUT", "PATCH"],
    "ip_allow": ["127.0.0.1/32"],
    "audit_source": "127.0.0.2",
    "rate_limit": {"rps": RATE_LIMIT_RPS, "burst": RATE_LIMIT_BURST},
    "input": {
        "body_types": {"customer": "string", "items": "array"},
        "path": "/api/orders/{param}",
    },
}


def inventory_yaml(
    spec: FleetSpec,
    secrets: dict[str, EnvSecrets],
    agents: list[dict[str, Any]],
    gateways: list[dict[str, Any]],
) -> str:
    """An inventory for the monitor that matches this fleet; secrets only as ${NAME}."""
    by_group: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for agent in agents:
        by_group[(agent["env"], agent["group"])].append(agent)
    entry = {(g["env"], g["group"]): g["url"] for g in gateways}
    environments = []
    for env in spec.environments:
        env_secrets = secrets[env.name]
        item: dict[str, Any] = {"name": env.name, "profile": env.profile}
        if env_secrets.hc_key_var:
            item["defaults"] = {"health_check_api_key": f"${{{env_secrets.hc_key_var}}}"}
        groups = []
        for group in env.groups:
            members = by_group[(env.name, group.name)]
            url = entry[(env.name, group.name)]
            groups.append(
                {
                    "name": group.name,
                    "entrypoint": url,
                    # HA: the group must survive one agent being offline.
                    "min_healthy": max(1, len(members) - 1),
                    "audit": AUDIT,
                    "api_checks": [
                        {
                            "name": "list-orders",
                            "method": "GET",
                            "path": "/api/orders",
                            "expect_status": 200,
                            "auth": _api_key(env_secrets),
                        },
                        {
                            "name": "get-order",
                            "method": "GET",
                            "path": "/api/orders/1",
                            "expect_status": 200,
                            "auth": _oauth2(env_secrets, url),
                        },
                        {
                            "name": "create-order",
                            "method": "POST",
                            "path": "/api/orders",
                            "expect_status": 201,
                            "body": {
                                "customer": "Monitor",
                                "items": [{"sku": "PROBE-1", "qty": 1}],
                            },
                            "auth": _api_key(env_secrets),
                        },
                    ],
                    "agents": [
                        {
                            "name": a["name"],
                            "url": a["url"],
                            "plain_http_ports": [a["plain_http_port"]],
                        }
                        for a in members
                    ],
                }
            )
        item["groups"] = groups
        environments.append(item)
    document = {
        "version": 1,
        "defaults": {"metrics_path": "/metrics", "tls": {"ca_bundle": CA_FILE}},
        "environments": environments,
    }
    header = "# Inventory of a simulated fleet (written by 'agentha sim'); secrets are ${NAME}.\n"
    # libyaml's emitter when present: ten thousand agents take seconds in pure Python.
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return header + yaml.dump(document, Dumper=dumper, sort_keys=False)
