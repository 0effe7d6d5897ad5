"""Three monitors agree through the broker; one of them is cut off from the agents.

m1 and m2 watch the fleet; m3 (an ``agentha monitor`` process) has the same agents behind a
blackhole: loopback ports that take connections and never answer, so every probe times out,
as it does for a monitor whose network is cut. A stopped agent is
down by quorum, m3 is reported cut off and left out, the consensus does not flap, and when m3
is killed its last will makes it offline at once, also in /metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
import yaml
from aio_helpers import until

from tests.mqtt.mqtt_support import monitor_server, settings

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]

AGENT = "test/orders/orders-1"


@contextlib.contextmanager
def blackhole() -> Iterator[Callable[[], str]]:
    """Hands out https URLs whose ports accept connections (the kernel's backlog) but never
    answer a byte: every TLS handshake times out."""
    holes: list[socket.socket] = []

    def url() -> str:
        hole = socket.socket()
        hole.bind(("127.0.0.1", 0))
        hole.listen(64)  # never accept()ed
        holes.append(hole)
        return f"https://127.0.0.1:{hole.getsockname()[1]}"

    try:
        yield url
    finally:
        for hole in holes:
            hole.close()


def cut_off_inventory(fleet, folder: Path, hole: Callable[[], str]) -> Path:
    """The fleet's inventory with every address replaced by one in the blackhole."""
    data = yaml.safe_load((fleet.directory / "inventory.yaml").read_text())
    data["defaults"]["tls"]["ca_bundle"] = str(fleet.ca_file)
    for env in data["environments"]:
        for group in env["groups"]:
            group["entrypoint"] = hole()
            for check in group.get("api_checks", []):
                if "oauth2" in check.get("auth", {}):
                    check["auth"]["oauth2"]["token_url"] = group["entrypoint"] + "/oauth/token"
            for agent in group["agents"]:
                agent["url"] = hole()
    path = folder / "cut-off.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def start_monitor(inventory: Path, broker_url: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable, "-m", "agentha", "monitor", "-c", str(inventory),
            "--listen", "127.0.0.1:0", "--status-interval", "0.3", "--fast-interval", "0.1",
            "--status-timeout", "1", "--mqtt", broker_url, "--mqtt-insecure",
            "--monitor-id", "m3", "--peers", "m1,m2",
        ],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip


async def test_quorum_cut_off_vantage_point_and_last_will(fleet, broker, tmp_path) -> None:
    with blackhole() as hole:
        await _quorum_with_a_cut_off_monitor(fleet, broker, tmp_path, hole)


async def _quorum_with_a_cut_off_monitor(fleet, broker, tmp_path, hole) -> None:
    m3 = start_monitor(cut_off_inventory(fleet, tmp_path, hole), broker.url, fleet.secrets)
    peers = ("m1", "m2", "m3")
    try:
        async with (
            monitor_server(fleet, settings(broker.url, "m1", peers=peers)) as s1,
            monitor_server(fleet, settings(broker.url, "m2", peers=peers)) as s2,
        ):

            def view(server=s1) -> dict:
                return server.snapshot()["consensus"]

            def agreed() -> bool:
                points, agents = view()["vantage_points"], view()["agents"]
                voters = [len(a["votes"]) for a in agents.values()]
                return (
                    points["m3"]["online"]
                    and points["m3"]["cut_off"]
                    and points["m3"]["agents"] == len(agents)  # m3 has probed every agent
                    and voters == [2] * len(agents)
                    and all(a["state"] != "unknown" for a in agents.values())
                )

            await until(agreed, within=20, what="m1, m2 agree and m3 is cut off")
            settled = {a: e["state"] for a, e in view()["agents"].items()}
            assert settled[AGENT] == "up" and settled["prod/orders/orders-3"] == "paused"
            assert view()["agents"][AGENT]["left_out"] == ["m3"]
            assert view(s2)["vantage_points"]["m3"]["cut_off"]

            # Watch the consensus of every agent while one agent is stopped: no flapping.
            seen: dict[str, list[str]] = {a: [] for a in settled}

            async def sample() -> None:
                while True:
                    for agent_id, entry in view()["agents"].items():
                        if not seen[agent_id] or seen[agent_id][-1] != entry["state"]:
                            seen[agent_id].append(entry["state"])
                    await asyncio.sleep(0.02)

            sampler = asyncio.create_task(sample())
            fleet.set(AGENT, stopped=True)
            await until(lambda: view()["agents"][AGENT]["state"] == "down", what="down by quorum")
            assert view()["agents"][AGENT]["votes"] == {"m1": "down", "m2": "down"}
            assert view()["groups"]["test/orders"]["status"] == "at_risk"
            await asyncio.sleep(0.5)
            sampler.cancel()
            assert seen[AGENT] == ["up", "down"]
            assert all(seen[a] == [s] for a, s in settled.items() if a != AGENT), seen

            # m3 dies without a word: the broker publishes its last will at once.
            killed = time.monotonic()
            m3.send_signal(signal.SIGKILL)
            await until(lambda: not view()["vantage_points"]["m3"]["online"], within=5)
            elapsed = time.monotonic() - killed
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{s2.url}/metrics") as answer,
            ):
                metrics = await answer.text()
            assert 'agentha_peer_up{monitor="m3"} 0.0' in metrics
            assert 'agentha_peer_up{monitor="m1"} 1.0' in metrics
            down = 'agent="orders-1",environment="test",group="orders",state="down"'
            assert f"agentha_consensus_agent_state{{{down}}} 1.0" in metrics
            assert elapsed < 2.0
    finally:
        if m3.poll() is None:
            m3.kill()
        m3.communicate(timeout=10)
