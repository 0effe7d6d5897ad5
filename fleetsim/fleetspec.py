"""The fleet file (YAML): environments -> groups -> agents, and the quick ``--agents N`` fleet.

A valid spec is laid out on loopback addresses: each group's gateway and each agent gets its
own address from the base network, in file order, so a fleet file always maps the same way.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fleetsim.certs import Window
from fleetsim.conditions import Conditions
from fleetsim.errors import FleetSpecError

Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=40)]
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
DEFAULT_BASE = "127.77.0.0/16"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CertificateSpec(_Strict):
    expires_in_days: float = Field(default=365, ge=-3650, le=3650)
    issued_days_ago: float = Field(default=1, ge=0, le=3650)

    def window(self) -> Window:
        return Window(-self.issued_days_ago, self.expires_in_days)


class AgentSpec(_Strict):
    name: Name
    certificate: CertificateSpec = CertificateSpec()
    conditions: Conditions = Conditions()


def _unique(items: list, what: str) -> list:
    names = [item.name for item in items]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"{what} names must be unique, repeated: {', '.join(dupes)}")
    return items


class GroupSpec(_Strict):
    name: Name
    agents: list[AgentSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _names(self) -> GroupSpec:
        _unique(self.agents, "agent")
        return self


class EnvironmentSpec(_Strict):
    name: Name
    profile: Literal["production", "staging", "test", "development"] = "development"
    require_health_check_key: bool = False
    groups: list[GroupSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _names(self) -> EnvironmentSpec:
        _unique(self.groups, "group")
        return self


class FleetSpec(_Strict):
    version: Literal[1]
    environments: list[EnvironmentSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _names(self) -> FleetSpec:
        _unique(self.environments, "environment")
        return self


def load(path: Path) -> FleetSpec:
    """Read and validate a fleet file; errors name the file, the field and what was expected."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FleetSpecError(f"{path}: cannot read fleet file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise FleetSpecError(f"{path}: fleet file is not UTF-8 text") from None
    return parse(text, str(path))


def load_demo() -> FleetSpec:
    """The demo fleet shipped with the package."""
    text = resources.files("fleetsim").joinpath("fleets/demo.yaml").read_text(encoding="utf-8")
    return parse(text, "demo fleet")


def parse(text: str, path: str) -> FleetSpec:
    """Validate fleet YAML; ``path`` names the source in errors."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise FleetSpecError(f"{path}: not valid YAML{where}") from None
    if not isinstance(raw, dict):
        raise FleetSpecError(f"{path}: expected a mapping with 'version' and 'environments'")
    try:
        return FleetSpec.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in err["loc"]
        ).lstrip(".")
        what = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        raise FleetSpecError(f"{path}: {where or 'top level'}: {what}") from None


def quick(agents: int) -> FleetSpec:
    """One environment of groups of 3-4 agents (fewer only when ``agents`` < 3)."""
    if agents < 1:
        raise FleetSpecError("--agents must be at least 1")
    groups = max(1, math.ceil(agents / 4)) if agents >= 3 else 1
    sizes = [agents // groups + (1 if i < agents % groups else 0) for i in range(groups)]
    width = len(str(groups))
    return FleetSpec(
        version=1,
        environments=[
            EnvironmentSpec(
                name="sim",
                profile="test",
                groups=[
                    GroupSpec(
                        name=f"g{g + 1:0{width}d}",
                        agents=[AgentSpec(name=f"a{a + 1}") for a in range(size)],
                    )
                    for g, size in enumerate(sizes)
                ],
            )
        ],
    )


@dataclass(frozen=True)
class AgentPlan:
    env: str
    group: str
    name: str
    address: str
    window: Window
    start: Conditions

    @property
    def id(self) -> str:
        return f"{self.env}/{self.group}/{self.name}"


@dataclass(frozen=True)
class GatewayPlan:
    env: str
    group: str
    address: str
    agents: tuple[str, ...]  # agent ids, in rotation order

    @property
    def id(self) -> str:
        return f"{self.env}/{self.group}"


@dataclass(frozen=True)
class Layout:
    agents: list[AgentPlan]
    gateways: list[GatewayPlan]


def parse_base(text: str) -> ipaddress.IPv4Network:
    """The address block agents are placed in; it must lie inside 127.0.0.0/8."""
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise FleetSpecError(
            f"--address-base {text!r}: expected a network like {DEFAULT_BASE}"
        ) from None
    if not isinstance(net, ipaddress.IPv4Network) or not net.subnet_of(LOOPBACK):
        raise FleetSpecError(f"--address-base {text!r}: must be inside 127.0.0.0/8")
    return net


def _addresses(base: ipaddress.IPv4Network) -> Iterator[str]:
    for addr in base.hosts():
        # Skip .0/.255 and 127.0.0.1 so nothing looks like a broadcast or the usual localhost.
        if addr.packed[3] not in (0, 255) and str(addr) != "127.0.0.1":
            yield str(addr)


def layout(spec: FleetSpec, base: ipaddress.IPv4Network) -> Layout:
    """Addresses for every gateway and agent, in file order."""
    free = _addresses(base)
    agents: list[AgentPlan] = []
    gateways: list[GatewayPlan] = []
    try:
        for env in spec.environments:
            for group in env.groups:
                gw_address = next(free)
                members = []
                for agent in group.agents:
                    plan = AgentPlan(
                        env.name,
                        group.name,
                        agent.name,
                        next(free),
                        agent.certificate.window(),
                        agent.conditions,
                    )
                    agents.append(plan)
                    members.append(plan.id)
                gateways.append(GatewayPlan(env.name, group.name, gw_address, tuple(members)))
    except StopIteration:
        needed = sum(len(g.agents) + 1 for e in spec.environments for g in e.groups)
        raise FleetSpecError(
            f"--address-base {base}: too small for {needed} addresses (agents and gateways)"
        ) from None
    return Layout(agents, gateways)
