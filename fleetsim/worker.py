"""A worker process (``python -m fleetsim.worker``): hosts one shard of the fleet.

It reads its configuration as one JSON line on stdin, starts the shard and a control API
for it on loopback, writes ``{"control_port": N}`` on stdout, and runs until SIGTERM,
SIGINT or the end of stdin (the main process went away).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from typing import Any

from aiohttp import web

from fleetsim import control
from fleetsim.certs import Authority, Window
from fleetsim.conditions import Conditions
from fleetsim.credentials import EnvSecrets
from fleetsim.errors import FleetError
from fleetsim.fleetspec import AgentPlan, GatewayPlan
from fleetsim.shard import Shard


async def _worker(config: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    agents = [
        AgentPlan(
            a["env"],
            a["group"],
            a["name"],
            a["address"],
            Window(*a["window"]),
            Conditions.model_validate(a["start"]),
        )
        for a in config["agents"]
    ]
    gateways = [
        GatewayPlan(g["env"], g["group"], g["address"], tuple(g["agents"]))
        for g in config["gateways"]
    ]
    secrets = {env: EnvSecrets(**fields) for env, fields in config["secrets"].items()}
    shard = Shard(
        agents,
        gateways,
        secrets,
        Authority.from_pem(config["ca_cert"], config["ca_key"]),
        bytes.fromhex(config["token_key"]),
    )
    runner: web.AppRunner | None = None
    try:
        await shard.start()
        handle = control.LocalHandle(shard)
        app = control.create_app(config["token"], control.Router({a.id: handle for a in agents}))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        sys.stdout.write(json.dumps({"control_port": port}) + "\n")
        sys.stdout.flush()
        # stdin reaching EOF means the main process is gone.
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        waits = [asyncio.ensure_future(reader.read()), asyncio.ensure_future(stop.wait())]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for waiting in waits:
            waiting.cancel()
    finally:
        if runner:
            await runner.cleanup()
        await shard.stop()


def main() -> int:
    line = sys.stdin.buffer.readline()
    try:
        config = json.loads(line)
        asyncio.run(_worker(config))
    except (FleetError, OSError) as exc:
        print(f"fleetsim worker: error: {exc}", file=sys.stderr)
        return 1
    except (ValueError, KeyError, TypeError):
        print("fleetsim worker: error: bad configuration on stdin", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
