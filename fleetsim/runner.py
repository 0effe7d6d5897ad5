"""Start a whole fleet (in this process or over workers), its control API and its files."""

from __future__ import annotations

import contextlib
import ipaddress
import resource
import secrets as random_secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from fleetsim import control, credentials, outputs, workers
from fleetsim.certs import Authority
from fleetsim.credentials import EnvSecrets
from fleetsim.errors import FleetError
from fleetsim.fleetspec import FleetSpec, layout
from fleetsim.shard import Shard

CONTROL_HOST = "127.0.0.1"


@dataclass(frozen=True)
class SimOptions:
    spec: FleetSpec
    base: ipaddress.IPv4Network
    workers: int | None = None  # None: choose from the fleet size and the open-file limit
    control_port: int = 0
    write_dir: Path | None = None


@dataclass
class RunningFleet:
    """What a started fleet offers its clients. Secrets stay in ``secrets``: never print them."""

    control_url: str
    token: str
    ca_pem: str
    secrets: dict[str, EnvSecrets]
    agents: list[dict[str, Any]]
    gateways: list[dict[str, Any]]
    workers: int
    fleet_json: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)


def raise_file_limit() -> int:
    """Raise the soft open-file limit to the hard one; returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@contextlib.asynccontextmanager
async def running_fleet(options: SimOptions) -> AsyncIterator[RunningFleet]:
    """Everything listening on entry; everything stopped (and fleet.json removed) on exit."""
    plan = layout(options.spec, options.base)
    env_secrets = credentials.load(
        (env.name, env.require_health_check_key) for env in options.spec.environments
    )
    count = workers.choose(options.workers, plan, raise_file_limit())
    authority = Authority.generate()
    token_key = random_secrets.token_bytes(32)
    token = random_secrets.token_urlsafe(32)

    async with contextlib.AsyncExitStack() as stack:
        owners: dict[str, control.ShardHandle] = {}
        if count == 0:
            shard = Shard(plan.agents, plan.gateways, env_secrets, authority, token_key)
            stack.push_async_callback(shard.stop)
            await shard.start()
            local = control.LocalHandle(shard)
            owners = {a.id: local for a in plan.agents}
        else:
            parts = workers.partition(plan, count)
            handles = await workers.start_workers(parts, token, authority, token_key, env_secrets)
            for handle in handles:
                stack.push_async_callback(handle.stop)
                owners.update({a.id: handle for a in handle.part.agents})
            count = len(handles)

        router = control.Router(owners)
        runner = web.AppRunner(control.create_app(token, router), access_log=None)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        try:
            await web.TCPSite(runner, CONTROL_HOST, options.control_port).start()
        except OSError as exc:
            raise FleetError(
                f"--control-port {options.control_port}: cannot listen: {exc.strerror}"
            ) from None
        control_url = f"http://{CONTROL_HOST}:{runner.addresses[0][1]}"

        agents = [a for h in router.handles for a in await h.list_agents()]
        gateways = [g for h in router.handles for g in await h.list_gateways()]
        fleet = RunningFleet(
            control_url, token, authority.cert_pem(), env_secrets, agents, gateways, count
        )
        if options.write_dir is not None:
            directory = options.write_dir
            stack.callback(outputs.remove_ready_marker, directory)
            try:
                fleet.fleet_json = outputs.write_all(
                    directory,
                    spec=options.spec,
                    control_url=control_url,
                    token=token,
                    ca_pem=fleet.ca_pem,
                    secrets=env_secrets,
                    agents=agents,
                    gateways=gateways,
                    workers=count,
                )
            except OSError as exc:
                raise FleetError(
                    f"--write-fleet {directory}: cannot write: {exc.strerror}"
                ) from None
            fleet.files = {
                name: fleet.fleet_json.parent / name
                for name in (
                    outputs.CA_FILE,
                    outputs.SECRETS_FILE,
                    outputs.TOKEN_FILE,
                    outputs.INVENTORY_FILE,
                )
            }
        yield fleet
