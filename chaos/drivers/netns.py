"""The ``netns`` driver: cut an agent that runs in its own network namespace off the network.

Settings (``drivers.netns``)::

    agents:
      orders-1:                  # agent name or ENV/GROUP/AGENT
        namespace: agent-orders-1
        link: eth0               # the interface INSIDE the namespace (its veth end)
    ip: ip                       # the iproute2 program (optional)
    timeout_s: 5                 # per `ip` call (optional)

Action ``cut``: ``ip -n NAMESPACE link set LINK down``; revert: ``... up``.

The link inside the namespace is taken down, not the host's end: the host keeps its route
to the namespace (marked linkdown), so traffic for the agent dies on the dead link. With
the host's end down, that route would go away and the traffic would follow the host's
default route out of the machine instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from chaos.drivers import agent_settings, split_agent
from chaos.drivers.command import run_bounded
from chaos.drivers.settings import agent_table, check_keys, check_seconds
from chaos.errors import ExperimentError
from chaos.faults import Driver, Fault

# iproute2's own limits: namespace names are file names, interface names at most 15 bytes.
NAMESPACE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
LINK_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,15}$")


class NetnsDriver(Driver):
    """Take an agent namespace's link down and up again."""

    name: ClassVar[str] = "netns"
    actions: ClassVar[frozenset[str]] = frozenset({"cut"})

    def check_settings(self) -> None:
        s = check_keys(self.settings, ("agents", "ip", "timeout_s"), "drivers.netns")
        self.timeout_s = check_seconds(s.get("timeout_s", 5), "drivers.netns.timeout_s", high=60)
        ip = s.get("ip", "ip")
        if not isinstance(ip, str) or not ip:
            raise ExperimentError("drivers.netns.ip: expected the iproute2 program, e.g. ip")
        self.ip = ip
        agents = agent_table(s, "drivers.netns", "{AGENT: {namespace, link}}")
        for key, entry in agents.items():
            where = f"drivers.netns.agents.{key}"
            entry = check_keys(entry, ("namespace", "link"), where)
            namespace, link = entry.get("namespace"), entry.get("link")
            if not isinstance(namespace, str) or not NAMESPACE_RE.match(namespace):
                raise ExperimentError(f"{where}.namespace: expected a network namespace name")
            if not isinstance(link, str) or not LINK_RE.match(link) or link.startswith("-"):
                raise ExperimentError(
                    f"{where}.link: expected an interface name inside the namespace"
                )
        self.agents: Mapping[str, Mapping[str, Any]] = agents

    def check_fault(self, fault: Fault) -> None:
        super().check_fault(fault)
        split_agent(fault.agent)
        agent_settings(self.name, self.agents, fault.agent)
        if fault.params:
            raise ExperimentError(f"fault {fault.id}: netns faults take no params")

    async def _set(self, fault: Fault, state: str, step: str) -> None:
        self.check_fault(fault)
        entry = agent_settings(self.name, self.agents, fault.agent)
        # Setting a state the link already has succeeds: revert is idempotent.
        await run_bounded(
            [self.ip, "-n", entry["namespace"], "link", "set", "dev", entry["link"], state],
            what=f"netns: {step} {fault.action} on {fault.agent}",
            timeout_s=self.timeout_s,
        )

    async def inject(self, fault: Fault) -> None:
        await self._set(fault, "down", "inject")

    async def revert(self, fault: Fault) -> None:
        await self._set(fault, "up", "revert")

    def describe(self, fault: Fault) -> str:
        try:
            entry = agent_settings(self.name, self.agents, fault.agent)
            where = f"{entry['link']} in {entry['namespace']}"
        except ExperimentError:
            where = "?"
        return f"{fault.action} {fault.agent}: link {where} down (netns)"
