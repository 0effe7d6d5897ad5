"""The control API: read the fleet and change agent conditions at run time.

Every process serves the same app: a worker for its own shard, the main process for the
whole fleet, relaying each call to the shard that holds the agent. Loopback HTTP with a
random bearer token.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

from fleetsim.credentials import same_secret
from fleetsim.shard import Shard

Result = tuple[int, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ShardHandle(Protocol):
    """How the control app reaches a shard: in this process or in a worker."""

    async def list_agents(self) -> list[dict[str, Any]]: ...
    async def list_gateways(self) -> list[dict[str, Any]]: ...
    async def get(self, agent_id: str) -> Result: ...
    async def patch(self, agent_id: str, body: Any) -> Result: ...
    async def reset(self, agent_id: str) -> Result: ...
    async def reset_all(self) -> Result: ...


class LocalHandle:
    """A shard hosted by this process."""

    def __init__(self, shard: Shard) -> None:
        self.shard = shard

    async def list_agents(self) -> list[dict[str, Any]]:
        return self.shard.list_agents()

    async def list_gateways(self) -> list[dict[str, Any]]:
        return self.shard.list_gateways()

    async def get(self, agent_id: str) -> Result:
        return self.shard.get(agent_id)

    async def patch(self, agent_id: str, body: Any) -> Result:
        return self.shard.patch(agent_id, body)

    async def reset(self, agent_id: str) -> Result:
        return self.shard.reset(agent_id)

    async def reset_all(self) -> Result:
        return self.shard.reset_all()


class Router:
    """The shards of the fleet and which one holds each agent."""

    def __init__(self, owners: dict[str, ShardHandle]) -> None:
        self.owners = owners
        self.handles = list({id(h): h for h in owners.values()}.values())


TOKEN = web.AppKey("token", str)
ROUTER = web.AppKey("router", Router)
AGENT_PATH = "/v1/agents/{env}/{group}/{agent}"


def create_app(token: str, router: Router) -> web.Application:
    app = web.Application(middlewares=[_guard], client_max_size=64 * 1024)
    app[TOKEN] = token
    app[ROUTER] = router
    app.router.add_get("/v1/agents", list_agents)
    app.router.add_get("/v1/gateways", list_gateways)
    app.router.add_get(AGENT_PATH, get_agent)
    app.router.add_patch(AGENT_PATH + "/conditions", patch_conditions)
    app.router.add_delete(AGENT_PATH + "/conditions", reset_conditions)
    app.router.add_delete("/v1/conditions", reset_all)
    return app


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not same_secret(given.strip(), request.app[TOKEN]):
        return web.json_response(
            {"error": "missing or wrong bearer token"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="fleetsim-control"'},
        )
    try:
        return await handler(request)
    except web.HTTPException as exc:  # unknown path or method: JSON like every other answer
        return _error(exc.status, exc.reason)


def _agent_id(request: web.Request) -> str:
    info = request.match_info
    return f"{info['env']}/{info['group']}/{info['agent']}"


def _owner(request: web.Request) -> ShardHandle | None:
    return request.app[ROUTER].owners.get(_agent_id(request))


async def list_agents(request: web.Request) -> web.Response:
    agents = [a for h in request.app[ROUTER].handles for a in await h.list_agents()]
    return web.json_response({"agents": agents})


async def list_gateways(request: web.Request) -> web.Response:
    gateways = [g for h in request.app[ROUTER].handles for g in await h.list_gateways()]
    return web.json_response({"gateways": gateways})


async def get_agent(request: web.Request) -> web.Response:
    owner = _owner(request)
    if owner is None:
        return _error(404, f"no agent {_agent_id(request)}")
    status, payload = await owner.get(_agent_id(request))
    return web.json_response(payload, status=status)


async def patch_conditions(request: web.Request) -> web.Response:
    owner = _owner(request)
    if owner is None:
        return _error(404, f"no agent {_agent_id(request)}")
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        return _error(400, "body is not valid JSON")
    status, payload = await owner.patch(_agent_id(request), body)
    return web.json_response(payload, status=status)


async def reset_conditions(request: web.Request) -> web.Response:
    owner = _owner(request)
    if owner is None:
        return _error(404, f"no agent {_agent_id(request)}")
    status, payload = await owner.reset(_agent_id(request))
    return web.json_response(payload, status=status)


async def reset_all(request: web.Request) -> web.Response:
    total = 0
    for handle in request.app[ROUTER].handles:
        status, payload = await handle.reset_all()
        if status != 200:
            return web.json_response(payload, status=status)
        total += payload["reset"]
    return web.json_response({"reset": total})
