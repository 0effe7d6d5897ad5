"""API Gateway Agents: one per group, routing API calls round-robin over healthy agents.

As the Frends gateway does, it checks each agent's status endpoint about every second and
takes an agent out of rotation unless it answers 200; a call that meets a connection error,
a timeout or a 503 is tried on the next agent. Health checks run only while the gateway is
in use (a minute after its last call), so a fleet of thousands of idle groups costs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web

from fleetsim.agent import CertStore, VirtualAgent
from fleetsim.agent_api import AGENT_HEADER, LAX_MAX_BODY, MAX_BODY, SERVER_LOG, known_host
from fleetsim.certs import Window
from fleetsim.fleetspec import GatewayPlan
from fleetsim.gateway_guard import RateLimiter, screened
from fleetsim.listener import Connections, Listener

CHECK_INTERVAL_S = 1.0
CHECK_TIMEOUT = aiohttp.ClientTimeout(total=1.0)
FORWARD_TIMEOUT = aiohttp.ClientTimeout(total=3.0, sock_connect=1.0)
IDLE_AFTER_S = 60.0
FORWARDED_HEADERS = ("Content-Type", "Accept", "X-Api-Key", "Authorization")

GATEWAYS = web.AppKey("gateways", dict[tuple[str, int], "Gateway"])
SESSION = web.AppKey("session", aiohttp.ClientSession)


class Gateway:
    """The gateway of one group."""

    def __init__(
        self,
        plan: GatewayPlan,
        agents: list[VirtualAgent],
        certs: CertStore,
        client_ssl: ssl.SSLContext,
        server: Callable[[], asyncio.Protocol],
    ) -> None:
        self.plan = plan
        self.agents = agents
        self._certs = certs
        self._ssl = client_ssl
        self._server = server
        self.listener = Listener(plan.address, self._accept)
        self.connections = Connections()
        self.healthy: dict[str, bool] = {a.plan.id: True for a in agents}
        self._next = 0
        self._last_used = 0.0
        self._checker: asyncio.Task[None] | None = None
        self._fresh = asyncio.Event()
        self.limiter = RateLimiter()

    def url(self) -> str:
        return f"https://{self.plan.address}:{self.listener.port}"

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.plan.id,
            "env": self.plan.env,
            "group": self.plan.group,
            "url": self.url(),
            "agents": list(self.plan.agents),
            "in_rotation": [aid for aid, ok in self.healthy.items() if ok],
            "checking": self._checker is not None and not self._checker.done(),
        }

    def start(self) -> None:
        self.listener.listen()

    async def close(self) -> None:
        self.listener.close()
        if self._checker:
            self._checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checker
        await self.connections.close()

    def insecure(self, audit_class: str) -> bool:
        """A class in ``audit_insecure`` of any agent of the group weakens the gateway too."""
        return any(audit_class in agent.conditions.audit_insecure for agent in self.agents)

    def _accept(self, sock: socket.socket) -> None:
        self.connections.serve(sock, self._protocol, self._tls)

    def _protocol(self) -> asyncio.Protocol:
        return screened(self._server(), lambda: self.insecure("headers"))

    async def _tls(self, _sock: socket.socket) -> ssl.SSLContext:
        # Made on first use, like the agents' contexts: cheap start for thousands of groups.
        plan = self.plan
        return self._certs.server_context(
            plan.id,
            plan.address,
            [plan.address, f"{plan.group}.{plan.env}.test"],
            Window(-1, 365),
            "gateway",
            legacy=False,
        )

    def refuse(self, request: web.Request) -> web.Response | None:
        """The gateway's own rules before routing: Host and rate limit (None: route it)."""
        if not self.insecure("headers") and not known_host(request.headers.get("Host")):
            return web.json_response({"error": "misdirected request: unknown host"}, status=421)
        if request.path.startswith("/api/") and not self.insecure("rate"):
            peer = request.transport.get_extra_info("peername") if request.transport else None
            wait = self.limiter.take((peer[0] if peer else "", request.method, request.path))
            if wait is not None:
                return web.json_response(
                    {"error": "rate limit exceeded"},
                    status=429,
                    headers={"Retry-After": str(max(1, round(wait)))},
                )
        return None

    async def forward(self, request: web.Request, session: aiohttp.ClientSession) -> web.Response:
        if refused := self.refuse(request):
            return refused
        await self._activate(session)
        if self.insecure("input"):
            request = request.clone(client_max_size=LAX_MAX_BODY)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return web.json_response({"error": "body too large"}, status=413)
        headers = {h: request.headers[h] for h in FORWARDED_HEADERS if h in request.headers}
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer:  # the agents filter by the client's address, not the gateway's
            headers["X-Forwarded-For"] = peer[0]
        for agent in self._rotation():
            url = f"{agent.tls_url()}{request.rel_url}"
            try:
                async with session.request(
                    request.method,
                    url,
                    data=body or None,
                    headers=headers,
                    ssl=self._ssl,
                    timeout=FORWARD_TIMEOUT,
                    allow_redirects=False,
                ) as answer:
                    payload = await answer.read()
                    if answer.status == 503:  # paused: it did not take the call
                        self.healthy[agent.plan.id] = False
                        continue
                    return web.Response(
                        status=answer.status,
                        body=payload,
                        headers={
                            "Content-Type": answer.headers.get("Content-Type", "text/plain"),
                            AGENT_HEADER: answer.headers.get(AGENT_HEADER, agent.plan.id),
                        },
                    )
            except (aiohttp.ClientError, TimeoutError, OSError):
                self.healthy[agent.plan.id] = False
        return web.json_response({"error": "no agent available in the group"}, status=503)

    def _rotation(self) -> list[VirtualAgent]:
        """Healthy agents, starting with the next one in round-robin order."""
        count = len(self.agents)
        order = [(self._next + i) % count for i in range(count)]
        healthy = [i for i in order if self.healthy[self.agents[i].plan.id]]
        if healthy:
            self._next = (healthy[0] + 1) % count
        return [self.agents[i] for i in healthy]

    async def _activate(self, session: aiohttp.ClientSession) -> None:
        self._last_used = time.monotonic()
        if self._checker is None or self._checker.done():
            self._fresh.clear()
            self._checker = asyncio.get_running_loop().create_task(self._check_loop(session))
        await self._fresh.wait()

    async def _check_loop(self, session: aiohttp.ClientSession) -> None:
        while time.monotonic() - self._last_used < IDLE_AFTER_S:
            results = await asyncio.gather(*(self._check(session, a) for a in self.agents))
            for agent, ok in zip(self.agents, results, strict=True):
                self.healthy[agent.plan.id] = ok
            self._fresh.set()
            await asyncio.sleep(CHECK_INTERVAL_S)

    async def _check(self, session: aiohttp.ClientSession, agent: VirtualAgent) -> bool:
        headers = {}
        if agent.secrets.hc_key:
            headers["health-check-api-key"] = agent.secrets.hc_key
        try:
            async with session.get(
                f"{agent.tls_url()}/frendsstatusinfo",
                headers=headers,
                ssl=self._ssl,
                timeout=CHECK_TIMEOUT,
            ) as answer:
                return answer.status == 200
        except (aiohttp.ClientError, TimeoutError, OSError):
            return False


def create_app(gateways: dict[tuple[str, int], Gateway]) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY, handler_args={"logger": SERVER_LOG})
    app[GATEWAYS] = gateways
    app.cleanup_ctx.append(_session)
    app.router.add_route("*", "/api/{tail:.*}", _route)
    app.router.add_post("/oauth/token", _route)
    return app


async def _session(app: web.Application):
    # One pool for all gateways of the process; kept-alive connections to every agent.
    connector = aiohttp.TCPConnector(limit=2000, limit_per_host=50)
    async with aiohttp.ClientSession(connector=connector) as session:
        app[SESSION] = session
        yield


async def _route(request: web.Request) -> web.Response:
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    gateway = request.app[GATEWAYS].get(tuple(sockname[:2])) if sockname else None
    if gateway is None:
        return web.json_response({"error": "no gateway here"}, status=404)
    return await gateway.forward(request, request.app[SESSION])
