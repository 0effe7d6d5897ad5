"""A shard: the agents and gateways one process hosts, with their two shared aiohttp apps."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import web

from fleetsim import agent_api, gateway
from fleetsim.agent import CertStore, VirtualAgent
from fleetsim.certs import Authority
from fleetsim.conditions import parse_patch
from fleetsim.credentials import EnvSecrets
from fleetsim.fleetspec import AgentPlan, GatewayPlan
from fleetsim.tlsctx import client_context

SHUTDOWN_TIMEOUT_S = 2.0


class Shard:
    """Starts, controls and stops the agents and gateways of one process."""

    def __init__(
        self,
        agents: list[AgentPlan],
        gateways: list[GatewayPlan],
        secrets: dict[str, EnvSecrets],
        authority: Authority,
        token_key: bytes,
    ) -> None:
        self._agent_plans = agents
        self._gateway_plans = gateways
        self._secrets = secrets
        self._authority = authority
        self._token_key = token_key
        self.agents: dict[str, VirtualAgent] = {}
        self.gateways: dict[str, gateway.Gateway] = {}
        self._runners: list[web.AppRunner] = []
        self._dir: Path | None = None

    async def start(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="fleetsim-"))
        certs = CertStore(self._authority, self._dir)
        ca_file = self._dir / "ca.pem"
        ca_file.write_text(self._authority.cert_pem(), encoding="ascii")

        by_address: dict[tuple[str, int], VirtualAgent] = {}
        agent_runner = await self._runner(agent_api.create_app(by_address, self._token_key))
        for plan in self._agent_plans:
            agent = VirtualAgent(plan, self._secrets[plan.env], certs, agent_runner.server)
            agent.bind()
            by_address[(plan.address, agent.tls.port)] = agent
            by_address[(plan.address, agent.plain.port)] = agent
            self.agents[plan.id] = agent

        by_gateway: dict[tuple[str, int], gateway.Gateway] = {}
        gateway_runner = await self._runner(gateway.create_app(by_gateway))
        client_ssl = client_context(ca_file)
        for gplan in self._gateway_plans:
            gw = gateway.Gateway(
                gplan,
                [self.agents[aid] for aid in gplan.agents],
                certs,
                client_ssl,
                gateway_runner.server,
            )
            gw.start()
            by_gateway[(gplan.address, gw.listener.port)] = gw
            self.gateways[gplan.id] = gw
        for agent in self.agents.values():
            agent.start()

    async def _runner(self, app: web.Application) -> web.AppRunner:
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=SHUTDOWN_TIMEOUT_S
        )
        await runner.setup()
        self._runners.append(runner)
        return runner

    async def stop(self) -> None:
        try:
            for gw in self.gateways.values():
                await gw.close()
            for agent in self.agents.values():
                await agent.close()
            for runner in reversed(self._runners):
                await runner.cleanup()
        finally:
            if self._dir:
                shutil.rmtree(self._dir, ignore_errors=True)

    # Control operations: (HTTP status, JSON payload), shared by the local and relayed paths.

    def list_agents(self) -> list[dict[str, Any]]:
        return [agent.describe() for agent in self.agents.values()]

    def list_gateways(self) -> list[dict[str, Any]]:
        return [gw.describe() for gw in self.gateways.values()]

    def get(self, agent_id: str) -> tuple[int, dict[str, Any]]:
        agent = self.agents.get(agent_id)
        if agent is None:
            return 404, {"error": f"no agent {agent_id}"}
        return 200, agent.describe()

    def patch(self, agent_id: str, body: Any) -> tuple[int, dict[str, Any]]:
        agent = self.agents.get(agent_id)
        if agent is None:
            return 404, {"error": f"no agent {agent_id}"}
        try:
            changes, ttl_s = parse_patch(body)
        except ValueError as exc:
            return 400, {"error": str(exc)}
        try:
            agent.state.apply(changes, ttl_s)
        except OSError as exc:  # e.g. a port taken while the agent was stopped
            return 409, {"error": f"cannot apply: {exc.strerror}"}
        return 200, agent.describe()

    def reset(self, agent_id: str) -> tuple[int, dict[str, Any]]:
        agent = self.agents.get(agent_id)
        if agent is None:
            return 404, {"error": f"no agent {agent_id}"}
        agent.state.reset()
        return 200, agent.describe()

    def reset_all(self) -> tuple[int, dict[str, Any]]:
        for agent in self.agents.values():
            agent.state.reset()
        return 200, {"reset": len(self.agents)}
