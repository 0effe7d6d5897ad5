"""Worker processes, the main process's side: how many, which groups, start, relay, stop.

The main process sends a worker its shard (and the CA, keys and secrets it needs) as one
JSON line on stdin and keeps the pipe open: when the main process goes away, stdin closes
and the worker stops, so no worker outlives its fleet. The worker answers with one JSON
line naming its control port once every listener of its shard is up (see worker.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import sys
from typing import Any

import aiohttp

from fleetsim import control
from fleetsim.certs import Authority
from fleetsim.credentials import EnvSecrets
from fleetsim.errors import FleetError
from fleetsim.fleetspec import Layout

START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 10.0
RELAY_TIMEOUT = aiohttp.ClientTimeout(total=30)
# File descriptors a process needs besides two per agent and one per gateway.
FD_HEADROOM = 512


def choose(requested: int | None, layout: Layout, fd_limit: int) -> int:
    """How many worker processes to run (0: everything in the main process)."""
    needed = 2 * len(layout.agents) + len(layout.gateways)
    budget = int(fd_limit * 0.8) - FD_HEADROOM
    if requested is None:
        if len(layout.agents) <= 1000 and needed <= budget:
            return 0
        requested = max(os.cpu_count() or 1, math.ceil(needed / budget))
    requested = min(requested, len(layout.gateways))  # a group is never split
    if math.ceil(needed / max(requested, 1)) > budget:
        least = math.ceil(needed / budget)
        raise FleetError(
            f"--workers {requested}: each process would need about "
            f"{math.ceil(needed / max(requested, 1))} open files but the limit is {fd_limit}; "
            f"use --workers {least} or more"
        )
    return requested


def partition(layout: Layout, count: int) -> list[Layout]:
    """Split whole groups over ``count`` shards of about the same number of agents."""
    agents = {a.id: a for a in layout.agents}
    target = math.ceil(len(layout.agents) / count)
    shards: list[Layout] = [Layout([], []) for _ in range(count)]
    index = 0
    for gw in layout.gateways:
        if len(shards[index].agents) >= target and index < count - 1:
            index += 1
        shards[index].gateways.append(gw)
        shards[index].agents.extend(agents[aid] for aid in gw.agents)
    return [s for s in shards if s.agents]


def _config(
    part: Layout,
    token: str,
    authority: Authority,
    token_key: bytes,
    secrets: dict[str, EnvSecrets],
) -> dict[str, Any]:
    envs = {a.env for a in part.agents}
    return {
        "token": token,
        "ca_cert": authority.cert_pem(),
        "ca_key": authority.key_pem(),
        "token_key": token_key.hex(),
        "secrets": {env: vars(secrets[env]) for env in envs},
        "agents": [
            {
                "env": a.env,
                "group": a.group,
                "name": a.name,
                "address": a.address,
                "window": [a.window.not_before_days, a.window.not_after_days],
                "start": a.start.model_dump(),
            }
            for a in part.agents
        ],
        "gateways": [
            {"env": g.env, "group": g.group, "address": g.address, "agents": list(g.agents)}
            for g in part.gateways
        ],
    }


class RemoteHandle:
    """A shard in a worker process, reached through that worker's control API."""

    def __init__(self, number: int, part: Layout) -> None:
        self.number = number
        self.part = part
        self._proc: asyncio.subprocess.Process | None = None
        self._session: aiohttp.ClientSession | None = None
        self._base = ""

    async def start(self, config: dict[str, Any]) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "fleetsim.worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self._proc.stdin and self._proc.stdout
        self._proc.stdin.write(json.dumps(config).encode() + b"\n")
        await self._proc.stdin.drain()
        try:
            line = await asyncio.wait_for(self._proc.stdout.readline(), START_TIMEOUT_S)
            port = int(json.loads(line)["control_port"])
        except (TimeoutError, ValueError, KeyError, TypeError):
            raise FleetError(f"worker {self.number} did not start (see its error above)") from None
        self._base = f"http://127.0.0.1:{port}"
        self._session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {config['token']}"}, timeout=RELAY_TIMEOUT
        )

    async def stop(self) -> None:
        if self._session:
            await self._session.close()
        if self._proc is None or self._proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self._proc.terminate()
        try:
            await asyncio.wait_for(self._proc.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            await self._proc.wait()

    async def _call(self, method: str, path: str, body: Any = None) -> control.Result:
        assert self._session is not None
        try:
            async with self._session.request(method, self._base + path, json=body) as answer:
                return answer.status, await answer.json()
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return 502, {"error": f"worker {self.number} is not answering"}

    async def list_agents(self) -> list[dict[str, Any]]:
        status, payload = await self._call("GET", "/v1/agents")
        return payload["agents"] if status == 200 else []

    async def list_gateways(self) -> list[dict[str, Any]]:
        status, payload = await self._call("GET", "/v1/gateways")
        return payload["gateways"] if status == 200 else []

    async def get(self, agent_id: str) -> control.Result:
        return await self._call("GET", f"/v1/agents/{agent_id}")

    async def patch(self, agent_id: str, body: Any) -> control.Result:
        return await self._call("PATCH", f"/v1/agents/{agent_id}/conditions", body)

    async def reset(self, agent_id: str) -> control.Result:
        return await self._call("DELETE", f"/v1/agents/{agent_id}/conditions")

    async def reset_all(self) -> control.Result:
        return await self._call("DELETE", "/v1/conditions")


async def start_workers(
    parts: list[Layout],
    token: str,
    authority: Authority,
    token_key: bytes,
    secrets: dict[str, EnvSecrets],
) -> list[RemoteHandle]:
    """Start one worker per part, all at once; on any failure stop the ones that started."""
    handles = [RemoteHandle(n, part) for n, part in enumerate(parts, start=1)]
    try:
        await asyncio.gather(
            *(h.start(_config(h.part, token, authority, token_key, secrets)) for h in handles)
        )
    except BaseException:
        await asyncio.gather(*(h.stop() for h in handles), return_exceptions=True)
        raise
    return handles
