"""The ``proxy`` driver: network faults through the fault proxy's control API.

The proxy (``chaos.proxy``, run as ``agentha chaos proxy``) sits between the load balancer
and the agents, one route per agent. Settings (``drivers.proxy``)::

    control_url: http://127.0.0.1:8474   # the proxy's control API
    routes: {orders-1: orders-1}         # agent id or name -> route (default: the agent's name)
    timeout_s: 5                         # per control call (optional)

Actions and their params (each toxic action also takes ``toxicity`` 0..1, the share of
connections it applies to, and ``direction``: downstream (default, agent -> client) or
upstream)::

    down                                  the route closes its listener and connections
    latency      ms, jitter_ms            every chunk delayed by ms +/- jitter_ms
    bandwidth    kbps                     at most kbps KB/s
    timeout      ms                       data stops; the connection closes after ms
    blackhole                             data stops; the connection stays open
    reset        after_ms                 the connection is reset (RST) on data
    slicer       average_size, size_variation, delay_us
    slow_close   ms                       the close is delayed by ms

The toxic's name is derived from the fault's id alone, so ``agentha chaos recover`` in
another process deletes exactly that toxic; deleting one that is gone is not an error.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import aiohttp

from chaos.drivers import split_agent
from chaos.drivers.settings import check_keys, check_seconds
from chaos.errors import DriverError, ExperimentError
from chaos.faults import Driver, Fault

ROUTE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_MS = 600_000
TOXIC_COMMON = ("toxicity", "direction")
# action -> (toxic type, {param: (toxic attribute, required, lowest value)})
TOXICS: dict[str, tuple[str, dict[str, tuple[str, bool, int]]]] = {
    "latency": ("latency", {"ms": ("latency_ms", True, 1), "jitter_ms": ("jitter_ms", False, 0)}),
    "bandwidth": ("bandwidth", {"kbps": ("rate_kbps", True, 1)}),
    "timeout": ("timeout", {"ms": ("timeout_ms", True, 1)}),
    "blackhole": ("timeout", {}),
    "reset": ("reset_peer", {"after_ms": ("timeout_ms", False, 0)}),
    "slicer": (
        "slicer",
        {
            "average_size": ("average_size", True, 1),
            "size_variation": ("size_variation", False, 0),
            "delay_us": ("delay_us", False, 0),
        },
    ),
    "slow_close": ("slow_close", {"ms": ("delay_ms", True, 1)}),
}


def _one_line(text: str, limit: int = 200) -> str:
    return " ".join(text.split())[:limit]


def toxic_name(fault: Fault) -> str:
    """The toxic's name for a fault: readable, valid for the proxy, unique per fault id."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", fault.id).strip("-.")[:40]
    digest = hashlib.sha256(fault.id.encode()).hexdigest()[:8]
    return f"agentha-{slug}-{digest}" if slug else f"agentha-{digest}"


class ProxyDriver(Driver):
    """Add and remove toxics, or take a route down, on the fault proxy."""

    name: ClassVar[str] = "proxy"
    actions: ClassVar[frozenset[str]] = frozenset({"down", *TOXICS})

    _session: aiohttp.ClientSession | None = None

    def check_settings(self) -> None:
        s = check_keys(self.settings, ("control_url", "routes", "timeout_s"), "drivers.proxy")
        self.timeout_s = check_seconds(s.get("timeout_s", 5), "drivers.proxy.timeout_s", high=300)
        url = s.get("control_url")
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ExperimentError(
                f"drivers.proxy.control_url: {url!r} is not valid; expected http://HOST:PORT"
            )
        self.control_url = str(url).rstrip("/")
        routes = s.get("routes", {})
        if not isinstance(routes, Mapping):
            raise ExperimentError("drivers.proxy.routes: expected a mapping of agent -> route")
        for agent, route in routes.items():
            if not isinstance(route, str) or not ROUTE_RE.match(route):
                raise ExperimentError(
                    f"drivers.proxy.routes.{agent}: {route!r} is not a route name; expected "
                    "1-64 letters, digits, '_', '.' or '-'"
                )
        self.routes: dict[str, str] = {str(k): v for k, v in routes.items()}

    def route_of(self, agent: str) -> str:
        """The route in front of an agent: by full id, then by name, else the agent's name."""
        name = split_agent(agent)[2]
        return self.routes.get(agent) or self.routes.get(name) or name

    def check_fault(self, fault: Fault) -> None:
        super().check_fault(fault)
        where = f"fault {fault.id}"
        route = self.route_of(fault.agent)
        if not ROUTE_RE.match(route):
            raise ExperimentError(
                f"{where}: agent name {route!r} is not a route name; map it in drivers.proxy.routes"
            )
        if fault.action == "down":
            if fault.params:
                raise ExperimentError(
                    f"{where}: params.{sorted(fault.params)[0]}: unknown for down; "
                    "expected no params"
                )
            return
        _, spec = TOXICS[fault.action]
        allowed = (*spec, *TOXIC_COMMON)
        for key in fault.params:
            if key not in allowed:
                raise ExperimentError(
                    f"{where}: params.{key}: unknown for {fault.action}; expected "
                    + ", ".join(allowed)
                )
        for key, (_, required, low) in spec.items():
            if key not in fault.params:
                if required:
                    raise ExperimentError(f"{where}: params.{key}: missing")
                continue
            value = fault.params[key]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_MS:
                raise ExperimentError(
                    f"{where}: params.{key}: {value!r}; expected a whole number {low}..{MAX_MS}"
                )
        if fault.action == "slicer" and fault.params.get("size_variation", 0) >= fault.params.get(
            "average_size", 1
        ):
            raise ExperimentError(
                f"{where}: params.size_variation: expected less than average_size"
            )
        toxicity = fault.params.get("toxicity", 1.0)
        if (
            isinstance(toxicity, bool)
            or not isinstance(toxicity, int | float)
            or not 0 <= toxicity <= 1
        ):
            raise ExperimentError(f"{where}: params.toxicity: {toxicity!r}; expected 0..1")
        direction = fault.params.get("direction", "downstream")
        if direction not in ("upstream", "downstream"):
            raise ExperimentError(
                f"{where}: params.direction: {direction!r}; expected upstream or downstream"
            )

    def toxic_body(self, fault: Fault) -> dict[str, Any]:
        """The control API body that creates this fault's toxic."""
        kind, spec = TOXICS[fault.action]
        attributes = {attr: fault.params[key] for key, (attr, _, _) in spec.items()
                      if key in fault.params}  # fmt: skip
        if fault.action == "blackhole":
            attributes = {"timeout_ms": 0}
        return {
            "name": toxic_name(fault),
            "type": kind,
            "direction": fault.params.get("direction", "downstream"),
            "toxicity": float(fault.params.get("toxicity", 1.0)),
            "attributes": attributes,
        }

    async def _call(self, method: str, path: str, body: Any, what: str) -> tuple[int, str]:
        """One control call: (status, error text); unreachable or slow -> ``DriverError``."""
        url = self.control_url + path
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s)
            )
        try:
            async with self._session.request(method, url, json=body) as answer:
                text = await answer.text()
        except TimeoutError:
            raise DriverError(
                f"{what}: no answer from {self.control_url} within {self.timeout_s:g} s"
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            reason = _one_line(str(exc)) or type(exc).__name__
            raise DriverError(f"{what}: cannot reach {self.control_url}: {reason}") from None
        try:
            detail = str(json.loads(text)["error"])
        except (ValueError, KeyError, TypeError):
            detail = text
        return answer.status, _one_line(detail)

    def _what(self, step: str, fault: Fault) -> str:
        return f"proxy: {step} {fault.action} on {fault.agent} (route {self.route_of(fault.agent)})"

    async def inject(self, fault: Fault) -> None:
        self.check_fault(fault)
        route = quote(self.route_of(fault.agent), safe="")
        what = self._what("inject", fault)
        if fault.action == "down":
            status, detail = await self._call("PATCH", f"/routes/{route}", {"enabled": False}, what)
            if status != 200:
                raise DriverError(f"{what}: control API answered {status}: {detail}")
            return
        body = self.toxic_body(fault)
        status, detail = await self._call("POST", f"/routes/{route}/toxics", body, what)
        if status == 409:
            # Injected before (a retry after a crash): replace it, so the params are these.
            await self._delete_toxic(route, body["name"], what)
            status, detail = await self._call("POST", f"/routes/{route}/toxics", body, what)
        if status != 201:
            raise DriverError(f"{what}: control API answered {status}: {detail}")

    async def _delete_toxic(self, route: str, name: str, what: str) -> None:
        status, detail = await self._call(
            "DELETE", f"/routes/{route}/toxics/{quote(name, safe='')}", None, what
        )
        # A toxic that is gone is reverted already; a route that is gone is a wrong setting.
        if status == 200 or (status == 404 and not detail.startswith("no route")):
            return
        raise DriverError(f"{what}: control API answered {status}: {detail}")

    async def revert(self, fault: Fault) -> None:
        self.check_fault(fault)
        route = quote(self.route_of(fault.agent), safe="")
        what = self._what("revert", fault)
        if fault.action == "down":
            status, detail = await self._call("PATCH", f"/routes/{route}", {"enabled": True}, what)
            if status != 200:
                raise DriverError(f"{what}: control API answered {status}: {detail}")
            return
        await self._delete_toxic(route, toxic_name(fault), what)

    def describe(self, fault: Fault) -> str:
        route = self.route_of(fault.agent)
        p = fault.params
        detail = {
            "latency": f"latency {p.get('ms')}±{p.get('jitter_ms', 0)} ms",
            "bandwidth": f"bandwidth {p.get('kbps')} KB/s",
            "timeout": f"timeout {p.get('ms')} ms",
            "reset": f"reset after {p.get('after_ms', 0)} ms",
            "slicer": f"slicer ~{p.get('average_size')} byte pieces",
            "slow_close": f"slow close {p.get('ms')} ms",
        }.get(fault.action, fault.action)
        extra = ""
        if fault.action != "down":
            extra = f", {p.get('direction', 'downstream')}"
            if p.get("toxicity", 1.0) != 1.0:
                extra += f", {float(p['toxicity']):.0%} of connections"
        return f"{detail} on {fault.agent} (proxy route {route}{extra})"

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
