"""A stand-in monitor API for the dashboard benchmark: N agents, every one changing every second.

Speaks the monitor's public API (``/api/v1/snapshot``, ``/api/v1/events`` as Server-Sent
Events with Last-Event-ID, ``/healthz``). Every second every agent gets a new status probe
result (latency, executing processes) and, with ``--flap 1`` (the default), one state
transition (up <-> degraded, with a finding), so the event stream carries N events a second,
sent in ten slices a second. ``--flap 0.01`` makes 1% of the agents change state each second.
Agents sit in groups of four with three required, in two environments.

    python bench/tui_fake_monitor.py --agents 10000 --port 9800 --flap 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from typing import Any

from aiohttp import web

SLICES = 10  # event batches per second
GROUP_SIZE = 4


class FakeFleet:
    def __init__(self, agents: int, flap: float = 1.0) -> None:
        self.flap = flap
        self.rng = random.Random(8)
        self.agents: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, dict[str, Any]] = {}
        for index in range(agents):
            env = "prod" if index % 2 else "test"
            gid = f"{env}/group-{index // (GROUP_SIZE * 2):04d}"
            aid = f"{gid}/agent-{index:05d}"
            self.groups.setdefault(gid, {"agents": []})["agents"].append(aid)
            self.agents[aid] = self._agent(up=True)
        self.seq = 0
        self.log: list[dict[str, Any]] = []  # the last few seconds of events
        self.waiters: set[asyncio.Event] = set()
        self._snapshot = b""
        self._snapshot_at = 0.0

    def _agent(self, up: bool) -> dict[str, Any]:
        now = time.time()
        return {
            "state": "up" if up else "degraded",
            "reason": "ok" if up else "cert_expiring",
            "since": now,
            "findings": [] if up else ["cert_expiring"],
            "probes": {
                "status": {
                    "probe": "status",
                    "ok": True,
                    "reason": "ok",
                    "message": "probe succeeded",
                    "started": now,
                    "duration": self.rng.uniform(0.001, 0.02),
                    "http_status": 200,
                    "context": {},
                    "details": {
                        "executing_processes": self.rng.randint(0, 20),
                        "body_is_json": True,
                    },
                },
                "tls": {
                    "probe": "tls",
                    "ok": True,
                    "reason": "ok",
                    "message": "probe succeeded",
                    "started": now,
                    "duration": 0.02,
                    "http_status": None,
                    "context": {},
                    "details": {
                        "version": "TLSv1.3",
                        "not_after": now + 86400 * 200,
                        "days_left": 200.0,
                    },
                },
            },
        }

    def change(self, agent_ids: list[str]) -> None:
        """New probe results and a transition for each of ``agent_ids``."""
        now = time.time()
        for aid in agent_ids:
            old = self.agents[aid]["state"]
            flaps = self.rng.random() < self.flap
            self.agents[aid] = self._agent(up=(old != "up") == flaps)
            if not flaps:
                continue
            self.seq += 1
            new = self.agents[aid]
            self.log.append(
                {
                    "seq": self.seq,
                    "time": now,
                    "kind": "agent",
                    "id": aid,
                    "old": old,
                    "new": new["state"],
                    "reason": new["reason"],
                }
            )
        del self.log[: max(0, len(self.log) - 3 * len(self.agents))]
        for waiter in self.waiters:
            waiter.set()

    def snapshot(self) -> bytes:
        # Serialised at most once a second, like probe results that change once a second.
        if time.monotonic() - self._snapshot_at >= 1.0:
            groups = {}
            for gid, group in self.groups.items():
                healthy = len(group["agents"])
                groups[gid] = {
                    "status": "ok",
                    "reason": "1 spare",
                    "since": None,
                    "healthy": healthy,
                    "required": healthy - 1,
                    "total": healthy,
                    "redundancy": 1,
                    "entrypoint_ok": None,
                    "entrypoint_reason": "",
                    "agents": group["agents"],
                }
            self._snapshot = json.dumps(
                {
                    "time": time.time(),
                    "last_event": self.seq,
                    "agents": self.agents,
                    "groups": groups,
                    "environments": {
                        "test": {"profile": "test", "groups": []},
                        "prod": {"profile": "production", "groups": []},
                    },
                }
            ).encode()
            self._snapshot_at = time.monotonic()
        return self._snapshot

    async def churn(self) -> None:
        ids = list(self.agents)
        per_slice = max(1, len(ids) // SLICES)
        position = 0
        while True:
            await asyncio.sleep(1 / SLICES)
            self.change(ids[position : position + per_slice])
            position = (position + per_slice) % len(ids)


def create_app(fleet: FakeFleet) -> web.Application:
    async def snapshot(_request: web.Request) -> web.Response:
        return web.Response(body=fleet.snapshot(), content_type="application/json")

    async def events(request: web.Request) -> web.StreamResponse:
        after = int(request.headers.get("Last-Event-ID") or fleet.seq)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        wake = asyncio.Event()
        fleet.waiters.add(wake)
        try:
            while True:
                await wake.wait()
                wake.clear()
                chunk = [e for e in fleet.log if e["seq"] > after]
                if chunk:
                    after = chunk[-1]["seq"]
                    await response.write(
                        "".join(
                            f"id: {e['seq']}\nevent: {e['kind']}\ndata: {json.dumps(e)}\n\n"
                            for e in chunk
                        ).encode()
                    )
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            fleet.waiters.discard(wake)
        return response

    async def start(app: web.Application):
        task = asyncio.create_task(fleet.churn())
        yield
        task.cancel()

    app = web.Application()
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/api/v1/snapshot", snapshot)
    app.router.add_get("/api/v1/events", events)
    app.cleanup_ctx.append(start)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--flap",
        type=float,
        default=1.0,
        help="share of the agents that change state each second (default 1)",
    )
    args = parser.parse_args()
    web.run_app(
        create_app(FakeFleet(args.agents, args.flap)),
        host="127.0.0.1",
        port=args.port,
        print=lambda text: print(text, flush=True),
        shutdown_timeout=1,
    )


async def _healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


if __name__ == "__main__":
    main()
