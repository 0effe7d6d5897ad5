"""The inventory: environments -> agent groups -> agents, loaded and validated once.

``load_inventory`` reads the YAML file, validates it (``monitor.inventory_file`` for single
fields, ``monitor.inventory_rules`` for whole-file rules) and returns an ``Inventory`` whose
agents have every default applied: top-level defaults -> environment -> group -> agent, with
``tls`` merged key by key. Any error raises ``InventoryError`` listing every problem found.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import ValidationError

from monitor.errors import InventoryError
from monitor.inventory_file import (
    AgentEntry,
    AgentSettings,
    ApiCheck,
    AuditSettings,
    InventoryFile,
    TlsSettings,
)
from monitor.inventory_rules import (
    FileUnusable,
    Issue,
    check_inventory,
    describe_error,
    drop_typo_twins,
    read_mapping_file,
)
from monitor.problems import Finding, Loc, Problem, loc_to_path
from monitor.secrets import Secret
from monitor.yamlpos import YamlDocument

__all__ = [
    "Agent",
    "ApiCheck",
    "Environment",
    "Group",
    "Inventory",
    "InventoryError",
    "TlsPolicy",
    "check_audit",
    "inventory_json_schema",
    "load_inventory",
]

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


@dataclass(frozen=True, slots=True)
class TlsPolicy:
    """What an agent's TLS must satisfy; ``ca_bundle`` is absolute (None: system store)."""

    ca_bundle: Path | None
    min_version: str
    expiry_warning_days: int
    expiry_critical_days: int
    server_name: str


@dataclass(frozen=True, slots=True)
class Agent:
    """One agent with every inherited setting applied."""

    environment: str
    group: str
    name: str
    url: str
    status_path: str
    metrics_path: str | None
    health_check_api_key: Secret | None
    allow_plaintext: bool
    plain_http_ports: tuple[int, ...]
    tls: TlsPolicy
    # Where each setting came from ("tls.min_version" -> field path); absent: built-in default.
    sources: Mapping[str, Loc] = field(default_factory=dict, compare=False, repr=False)

    @property
    def id(self) -> str:
        return f"{self.environment}/{self.group}/{self.name}"

    @property
    def status_url(self) -> str:
        return self.url.rstrip("/") + self.status_path

    @property
    def metrics_url(self) -> str | None:
        return None if self.metrics_path is None else self.url.rstrip("/") + self.metrics_path

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (443 if parts.scheme == "https" else 80)

    @property
    def is_plaintext(self) -> bool:
        return urlsplit(self.url).scheme == "http"


@dataclass(frozen=True, slots=True)
class Group:
    environment: str
    name: str
    entrypoint: str
    min_healthy: int
    api_checks: tuple[ApiCheck, ...]
    agents: tuple[Agent, ...]
    # The group-level settings (defaults chain without the agents) govern the entrypoint.
    allow_plaintext: bool = False
    tls: TlsPolicy | None = None
    # The group's security audit defaults; each API check's own ``audit`` overrides them.
    audit: AuditSettings | None = None

    @property
    def id(self) -> str:
        return f"{self.environment}/{self.name}"


@dataclass(frozen=True, slots=True)
class Environment:
    name: str
    profile: str
    groups: tuple[Group, ...]

    @property
    def is_production(self) -> bool:
        return self.profile == "production"


@dataclass(frozen=True, slots=True)
class Inventory:
    """A validated inventory. ``findings`` are advisory; the inventory is usable as it is."""

    path: Path
    environments: tuple[Environment, ...]
    findings: tuple[Finding, ...] = ()
    version: int = 1

    def groups(self) -> Iterator[tuple[Environment, Group]]:
        for env in self.environments:
            for group in env.groups:
                yield env, group

    def agents(self) -> Iterator[tuple[Environment, Group, Agent]]:
        for env, group in self.groups():
            for agent in group.agents:
                yield env, group, agent

    def agent(self, agent_id: str) -> Agent:
        """The agent with id ENV/GROUP/AGENT; ``KeyError`` if there is none."""
        for _env, _group, agent in self.agents():
            if agent.id == agent_id:
                return agent
        raise KeyError(agent_id)

    def summary(self) -> str:
        """``2 environments, 3 groups, 8 agents``."""
        groups = sum(1 for _ in self.groups())
        agents = sum(1 for _ in self.agents())
        return (
            f"{_plural(len(self.environments), 'environment')}, "
            f"{_plural(groups, 'group')}, {_plural(agents, 'agent')}"
        )


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def load_inventory(
    path: str | os.PathLike[str], environ: Mapping[str, str] | None = None
) -> Inventory:
    """Read, validate and resolve an inventory file; secrets are read from ``environ``.

    Raises ``InventoryError`` with every problem found (file, line, field path, message).
    """
    environ = os.environ if environ is None else environ
    path = Path(path)
    name = str(path)

    def fail(code: str, message: str, line: int | None = None) -> InventoryError:
        return InventoryError([Problem(code, message, name, "", line)])

    try:
        doc, issues = read_mapping_file(path, "version and environments")
    except FileUnusable as exc:
        raise fail(exc.code, exc.message, exc.line) from None
    try:
        model = InventoryFile.model_validate(doc.data, context={"environ": environ})
    except ValidationError as exc:
        issues += drop_typo_twins([describe_error(err, InventoryFile) for err in exc.errors()])
        raise InventoryError(_to_problems(issues, doc, name, Problem)) from None

    environments = _resolve(model, path.parent)
    issues += check_inventory(model, environments, doc.line_of)
    errors = _to_problems([i for i in issues if not i.finding], doc, name, Problem)
    findings = _to_problems([i for i in issues if i.finding], doc, name, Finding)
    if errors:
        raise InventoryError(errors, findings)
    return Inventory(path=path, environments=environments, findings=tuple(findings))


def check_audit(group: Group, check: ApiCheck) -> AuditSettings:
    """An API check's audit settings: the group's, overridden key by key by the check's own
    (``checks`` merged class by class)."""
    values: dict[str, Any] = {}
    switches: dict[str, bool] = {}
    for layer in (group.audit, check.audit):
        if layer is None:
            continue
        for name in layer.model_fields_set:
            if name == "checks":
                switches.update(layer.checks)
            else:
                values[name] = getattr(layer, name)
    return AuditSettings.model_construct(checks=switches, **values)


def inventory_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the inventory file, with descriptions, for editors."""
    schema = InventoryFile.model_json_schema(mode="validation")
    return {"$schema": JSON_SCHEMA_DIALECT, **schema}


P = TypeVar("P", bound=Problem)


def _to_problems(issues: list[Issue], doc: YamlDocument, name: str, kind: type[P]) -> list[P]:
    seen: set[tuple[str, Loc, str]] = set()
    out = []
    for issue in issues:
        key = (issue.code, issue.loc, issue.message)
        if key in seen:  # one inherited setting can fail for many agents: say it once
            continue
        seen.add(key)
        line = issue.line or doc.line_of(issue.loc)
        out.append(kind(issue.code, issue.message, name, loc_to_path(issue.loc), line))
    out.sort(key=lambda p: (p.line is None, p.line or 0))
    return out


# --- resolution: apply the defaults chain, remembering where each value came from ---

Layer = tuple[Loc, AgentSettings | None]


def _merge(layers: list[Layer]) -> tuple[dict[str, Any], dict[str, Loc]]:
    values: dict[str, Any] = {
        name: info.get_default(call_default_factory=True)
        for name, info in AgentSettings.model_fields.items()
        if name != "tls"
    }
    values.update(
        {
            f"tls.{name}": info.get_default(call_default_factory=True)
            for name, info in TlsSettings.model_fields.items()
        }
    )
    sources: dict[str, Loc] = {}
    for loc, settings in layers:
        if settings is None:
            continue
        for name in settings.model_fields_set & AgentSettings.model_fields.keys():
            if name == "tls":
                for key in settings.tls.model_fields_set:
                    values[f"tls.{key}"] = getattr(settings.tls, key)
                    sources[f"tls.{key}"] = (*loc, "tls", key)
            else:
                values[name] = getattr(settings, name)
                sources[name] = (*loc, name)
    return values, sources


def _resolve(model: InventoryFile, base: Path) -> tuple[Environment, ...]:
    environments = []
    for e, env in enumerate(model.environments):
        env_loc: Loc = ("environments", e)
        groups = []
        for g, group in enumerate(env.groups):
            group_loc: Loc = (*env_loc, "groups", g)
            layers: list[Layer] = [
                (("defaults",), model.defaults),
                ((*env_loc, "defaults"), env.defaults),
                ((*group_loc, "defaults"), group.defaults),
            ]
            group_values, _ = _merge(layers)
            agents = tuple(
                _agent(
                    env.name, group.name, agent, [*layers, ((*group_loc, "agents", a), agent)], base
                )
                for a, agent in enumerate(group.agents)
            )
            groups.append(
                Group(
                    environment=env.name,
                    name=group.name,
                    entrypoint=group.entrypoint,
                    min_healthy=group.min_healthy,
                    api_checks=tuple(group.api_checks),
                    agents=agents,
                    allow_plaintext=group_values["allow_plaintext"],
                    tls=_tls_policy(group_values, base, group.entrypoint),
                    audit=group.audit,
                )
            )
        environments.append(Environment(name=env.name, profile=env.profile, groups=tuple(groups)))
    return tuple(environments)


def _agent(env: str, group: str, entry: AgentEntry, layers: list[Layer], base: Path) -> Agent:
    values, sources = _merge(layers)
    url = entry.url
    return Agent(
        environment=env,
        group=group,
        name=entry.name,
        url=url,
        status_path=values["status_path"],
        metrics_path=values["metrics_path"],
        health_check_api_key=values["health_check_api_key"],
        allow_plaintext=values["allow_plaintext"],
        plain_http_ports=tuple(values["plain_http_ports"]),
        tls=_tls_policy(values, base, url),
        sources=sources,
    )


def _tls_policy(values: dict[str, Any], base: Path, url: str) -> TlsPolicy:
    ca_bundle = values["tls.ca_bundle"]
    return TlsPolicy(
        ca_bundle=None if ca_bundle is None else (base / ca_bundle).absolute(),
        min_version=values["tls.min_version"],
        expiry_warning_days=values["tls.expiry_warning_days"],
        expiry_critical_days=values["tls.expiry_critical_days"],
        server_name=values["tls.server_name"] or urlsplit(url).hostname or "",
    )
