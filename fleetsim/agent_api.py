"""The HTTP face of every virtual agent: status, metrics, sample API triggers, OAuth tokens.

One aiohttp Application serves all agents of a process; a middleware finds the agent from
the connection's local address and applies its conditions before any route runs.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import random
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from fleetsim import tokens
from fleetsim.agent import VirtualAgent
from fleetsim.credentials import same_secret

log = logging.getLogger(__name__)
AGENTS = web.AppKey("agents", dict[tuple[str, int], VirtualAgent])
TOKEN_KEY = web.AppKey("token_key", bytes)
AGENT = "fleetsim.agent"  # request key
AGENT_HEADER = "X-Fleetsim-Agent"
MAX_BODY = 64 * 1024
# An agent with "input" in audit_insecure reads bodies up to this size (no 413).
LAX_MAX_BODY = 8 * 1024 * 1024
# IP filtering of the API triggers: only these clients may call them. Gateways, HAProxy and
# the monitor all connect from 127.0.0.1; a proxy there names the client in X-Forwarded-For.
ALLOWED_CLIENTS = (ipaddress.ip_network("127.0.0.1/32"),)
TRUSTED_PROXY = "127.0.0.1"
# API paths that exist: another method on them is refused (405), unless "methods" is insecure.
_API_RESOURCES = re.compile(r"/api/orders(?:/[^/]+)?")
ORDERS = [
    {
        "id": i,
        "customer": f"Customer {i:03d}",
        "status": ("open", "shipped", "closed")[i % 3],
        "total": round(19.5 * i, 2),
    }
    for i in range(1, 51)
]
_rng = random.Random()  # noqa: S311 - latency jitter and error injection, not crypto

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _QuietServerLog(logging.Filter):
    """aiohttp logs every request it cannot parse with a traceback that quotes the request.

    A refused faulty header is normal here (the security audit sends them): drop those, and
    keep any other server error as one line without the traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            return False
        if error is not None:
            record.msg = f"{record.getMessage()}: {type(error).__name__}"
            record.args = ()
            record.exc_info = None
        return True


SERVER_LOG = logging.getLogger("fleetsim.server")
SERVER_LOG.addFilter(_QuietServerLog())


def create_app(agents: dict[tuple[str, int], VirtualAgent], token_key: bytes) -> web.Application:
    app = web.Application(
        middlewares=[conditions_middleware],
        client_max_size=MAX_BODY,
        handler_args={"logger": SERVER_LOG},
    )
    app[AGENTS] = agents
    app[TOKEN_KEY] = token_key
    # Route names are the bounded `route` label of the request counter.
    app.router.add_get("/frendsstatusinfo", status, name="status")
    app.router.add_get("/metrics", metrics, name="metrics")
    app.router.add_post("/oauth/token", token, name="token")
    app.router.add_get("/api/orders", list_orders, name="orders")
    app.router.add_get("/api/orders/{order_id}", get_order, name="order")
    app.router.add_post("/api/orders", create_order, name="create_order")
    # Last, so it only sees what no route above takes: other methods and unknown API paths.
    app.router.add_route("*", "/api/{tail:.*}", other_api_call, name="other_api")
    return app


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def conditions_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    agent = request.app[AGENTS].get(tuple(sockname[:2])) if sockname else None
    if agent is None:
        return _error(404, "no agent here")
    request[AGENT] = agent
    now = agent.conditions
    if sockname[1] == agent.plain.port and now.plain_port == "redirect":
        location = f"{agent.tls_url()}{request.rel_url}"
        return web.Response(status=301, headers={"Location": location, AGENT_HEADER: agent.plan.id})
    await agent.unhung.wait()
    if agent.conditions.slow_ms:
        await asyncio.sleep(agent.conditions.slow_ms / 1000)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = _error(exc.status, exc.reason)
    except Exception as exc:
        # A bug must not print a traceback: it could carry request data such as keys.
        log.error(
            "agent %s: %s while answering %s",
            agent.plan.id,
            type(exc).__name__,
            request.match_info.route.name or "other",
        )
        response = _error(500, "internal error")
    response.headers[AGENT_HEADER] = agent.plan.id
    route = request.match_info.route.name or "other"
    agent.requests[(route, response.status)] += 1
    return response


async def status(request: web.Request) -> web.Response:
    agent: VirtualAgent = request[AGENT]
    expected = agent.secrets.hc_key
    if expected is not None:
        given = request.headers.get("health-check-api-key", "")
        if not same_secret(given, expected):
            return _error(401, "missing or wrong health-check-api-key")
    if agent.conditions.paused:
        return web.json_response({"status": "Paused", "agent": agent.plan.name}, status=503)
    processes, memory = agent.load()
    return web.json_response(
        {
            "status": "Running",
            "agent": agent.plan.name,
            "agentGroup": agent.plan.group,
            "environment": agent.plan.env,
            "executingProcesses": processes,
            "memoryUsageBytes": memory,
        }
    )


async def metrics(request: web.Request) -> web.Response:
    agent: VirtualAgent = request[AGENT]
    processes, memory = agent.load()
    lines = [
        "# HELP frends_agent_up Whether the agent is running (0 when paused).",
        "# TYPE frends_agent_up gauge",
        f"frends_agent_up {0 if agent.conditions.paused else 1}",
        "# HELP frends_agent_executing_processes Processes executing right now.",
        "# TYPE frends_agent_executing_processes gauge",
        f"frends_agent_executing_processes {processes}",
        "# HELP frends_agent_memory_bytes Resident memory of the agent.",
        "# TYPE frends_agent_memory_bytes gauge",
        f"frends_agent_memory_bytes {memory}",
        "# HELP frends_agent_start_time_seconds Start time since the Unix epoch.",
        "# TYPE frends_agent_start_time_seconds gauge",
        f"frends_agent_start_time_seconds {agent.started_at:.3f}",
        "# HELP frends_agent_http_requests_total HTTP requests answered, by route and code.",
        "# TYPE frends_agent_http_requests_total counter",
    ]
    for (route, code), count in sorted(agent.requests.items()):
        lines.append(f'frends_agent_http_requests_total{{route="{route}",code="{code}"}} {count}')
    return web.Response(
        text="\n".join(lines) + "\n",
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff"},
    )


def insecure(agent: VirtualAgent, audit_class: str) -> bool:
    """Whether the agent fails the audit class on purpose (condition ``audit_insecure``)."""
    return audit_class in agent.conditions.audit_insecure


def known_host(host: str | None) -> bool:
    """Whether a Host header may name this fleet: an IP literal, a single label (localhost)
    or a ``*.test`` name. Another domain (``shop.example.com``) is a request for another
    site: misdirected. No Host at all (HTTP/1.0) is let through.
    """
    if host is None:
        return True
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    name = name.strip("[]").lower()
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return "." not in name or (name.endswith(".test") and len(name) > 5)
    return True


def client_address(request: web.Request) -> str | None:
    """The calling client: the peer, or the last X-Forwarded-For entry from a trusted proxy."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    address = peer[0] if peer else None
    forwarded = request.headers.getall("X-Forwarded-For", [])
    if address == TRUSTED_PROXY and forwarded:
        address = forwarded[-1].rsplit(",", 1)[-1].strip()
    return address


def _client_allowed(address: str | None) -> bool:
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(ip in network for network in ALLOWED_CLIENTS)


def _authorized(request: web.Request, agent: VirtualAgent) -> bool:
    if insecure(agent, "auth"):
        return True  # accepts anyone: what the audit's auth check must find
    api_key = request.headers.get("X-Api-Key")
    if api_key is not None:
        return same_secret(api_key, agent.secrets.api_key)
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credential:
        return tokens.valid(request.app[TOKEN_KEY], credential.strip(), agent.plan.env)
    return False


async def _api_gate(request: web.Request) -> web.Response | None:
    """Paused, unauthenticated and injected-error answers; None lets the call through."""
    agent: VirtualAgent = request[AGENT]
    if agent.conditions.paused:
        return _error(503, "agent is paused")
    if not insecure(agent, "headers") and not known_host(request.headers.get("Host")):
        return _error(421, "misdirected request: unknown host")
    if not insecure(agent, "ip") and not _client_allowed(client_address(request)):
        return _error(403, "client address not allowed")
    if not _authorized(request, agent):
        return web.json_response(
            {"error": "authentication required: X-Api-Key or a bearer token"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="fleetsim"'},
        )
    if _rng.random() < agent.conditions.error_rate:
        return _error(500, "simulated process failure")
    # A process execution takes a few milliseconds.
    await asyncio.sleep(0.002 + _rng.random() * 0.006)
    return None


async def list_orders(request: web.Request) -> web.Response:
    if blocked := await _api_gate(request):
        return blocked
    limit_text = request.query.get("limit", "20")
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= 50:
        return _error(400, "limit must be an integer from 1 to 50")
    return web.json_response({"orders": ORDERS[: int(limit_text)], "count": len(ORDERS)})


async def get_order(request: web.Request) -> web.Response:
    if blocked := await _api_gate(request):
        return blocked
    order_id = request.match_info["order_id"]
    if insecure(request[AGENT], "input"):
        index = int(order_id) - 1  # unvalidated: "../x" raises, answered 500 (a crash)
    elif not order_id.isdigit() or len(order_id) > 9:
        return _error(400, "order id must be a positive integer")
    else:
        index = int(order_id) - 1
    if not 0 <= index < len(ORDERS):
        return _error(404, "no such order")
    return web.json_response(ORDERS[index])


def _order_problem(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "body must be a JSON object"
    unknown = set(body) - {"customer", "items"}
    if unknown:
        return f"unknown field: {sorted(unknown)[0]}"
    customer = body.get("customer")
    if not isinstance(customer, str) or not 1 <= len(customer) <= 100:
        return "customer must be a string of 1 to 100 characters"
    items = body.get("items")
    if not isinstance(items, list) or not 1 <= len(items) <= 100:
        return "items must be a list of 1 to 100 items"
    for item in items:
        if not isinstance(item, dict) or set(item) != {"sku", "qty"}:
            return "each item must be an object with sku and qty"
        if not isinstance(item["sku"], str) or not 1 <= len(item["sku"]) <= 40:
            return "sku must be a string of 1 to 40 characters"
        qty = item["qty"]
        if isinstance(qty, bool) or not isinstance(qty, int) or not 1 <= qty <= 1000:
            return "qty must be an integer from 1 to 1000"
    return None


async def create_order(request: web.Request) -> web.Response:
    if blocked := await _api_gate(request):
        return blocked
    if insecure(request[AGENT], "input"):
        return await _create_order_unchecked(request)
    if request.content_type != "application/json":
        return _error(415, "Content-Type must be application/json")
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        return _error(400, "body is not valid JSON")
    except web.HTTPRequestEntityTooLarge:
        return _error(413, "body too large")
    if problem := _order_problem(body):
        return _error(400, problem)
    order_id = len(ORDERS) + _rng.randint(1, 10**6)
    return web.json_response({"id": order_id, "status": "open", **body}, status=201)


async def _create_order_unchecked(request: web.Request) -> web.Response:
    """No validation at all: a huge body is read, bad JSON crashes (500), any shape is taken."""
    json.loads(await request.clone(client_max_size=LAX_MAX_BODY).read())
    order_id = len(ORDERS) + _rng.randint(1, 10**6)
    return web.json_response({"id": order_id, "status": "open"}, status=201)


async def other_api_call(request: web.Request) -> web.Response:
    """A method no route takes (405), or an unknown API path (404).

    With "methods" in audit_insecure the agent takes any method on its API paths (200), as
    an API would that has no method rules.
    """
    agent: VirtualAgent = request[AGENT]
    if not _API_RESOURCES.fullmatch(request.path):
        return _error(404, "no such API")
    if not insecure(agent, "methods"):
        allow = "GET, POST" if request.path == "/api/orders" else "GET"
        return web.json_response(
            {"error": "method not allowed"}, status=405, headers={"Allow": allow}
        )
    if blocked := await _api_gate(request):
        return blocked
    return web.json_response({"status": "accepted", "method": request.method})


async def token(request: web.Request) -> web.Response:
    agent: VirtualAgent = request[AGENT]
    if agent.conditions.paused:
        return _error(503, "agent is paused")
    try:
        form = await request.post()
    except (ValueError, web.HTTPException):
        return web.json_response({"error": "invalid_request"}, status=400)
    if form.get("grant_type") != "client_credentials":
        return web.json_response({"error": "unsupported_grant_type"}, status=400)
    client_id, secret = form.get("client_id"), form.get("client_secret")
    if not isinstance(client_id, str) or not isinstance(secret, str):
        return web.json_response({"error": "invalid_request"}, status=400)
    expected = agent.secrets
    if client_id != expected.client_id or not same_secret(secret, expected.client_secret):
        return web.json_response({"error": "invalid_client"}, status=401)
    access = tokens.issue(request.app[TOKEN_KEY], agent.plan.env, client_id)
    return web.json_response(
        {"access_token": access, "token_type": "Bearer", "expires_in": tokens.TOKEN_LIFETIME_S},
        headers={"Cache-Control": "no-store"},
    )
