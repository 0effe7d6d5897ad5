"""A whole chaos stack on loopback: a small fleet, HAProxy in front of one group, a monitor.

Group stage/orders (3 agents, min_healthy 2) sits behind a real HAProxy configured by
``agentha lb haproxy-config``; stage/pair (2 agents, min_healthy 1) is reached through its
gateway. Load calls only the GET check ``list-orders``, so HAProxy may retry any call a
drained agent refuses (it never retries a POST at layer 7).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from conftest import SimFleet, start_sim
from haproxy_helpers import backend_stats, front_certificate, haproxy_process
from load_helpers import agentha, free_port
from monitor_process import MonitorProcess, monitor_process

FLEET = """\
version: 1
environments:
  - name: stage
    profile: test
    groups:
      - name: orders
        agents: [{name: orders-1}, {name: orders-2}, {name: orders-3}]
      - name: pair
        agents: [{name: pair-1}, {name: pair-2}]
"""
GROUP = "stage/orders"
BACKEND = "be_stage_orders"
MONITOR_ARGS = (
    "--status-interval", "0.5", "--status-timeout", "0.4", "--fast-interval", "0.2",
    "--entrypoint-interval", "1", "--tls-interval", "3600", "--plaintext-interval", "3600",
    "--auth-interval", "3600",
)  # fmt: skip


@dataclass
class Stack:
    fleet: SimFleet
    inventory: Path
    monitor: MonitorProcess
    haproxy_config: Path
    stats_port: int
    directory: Path

    @property
    def env(self) -> dict[str, str]:
        """For agentha: the fleet's secrets, and a state folder of the stack's own."""
        return {**self.fleet.secrets, "AGENTHA_STATE_DIR": str(self.directory / "state")}

    def conditions(self, agent: str) -> dict[str, Any]:
        status, payload = self.fleet.control("GET", f"/v1/agents/{agent}")
        assert status == 200, payload
        return payload["conditions"]

    def backend_states(self) -> dict[str, str]:
        """HAProxy's view of each agent (its BACKEND summary row left out)."""
        rows = backend_stats(self.stats_port, BACKEND).items()
        return {name: row["status"] for name, row in rows if name != "BACKEND"}

    def wait_settled(self, within: float = 20) -> None:
        """Every agent up in the monitor and in HAProxy, with no fault left."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            snapshot = self.monitor.snapshot()
            states = {a["state"] for a in snapshot["agents"].values()}
            with contextlib.suppress(OSError):
                backends = set(self.backend_states().values())
                if states == {"up"} and backends <= {"UP", "no check"}:
                    return
            time.sleep(0.2)
        raise AssertionError(f"the stack did not settle: {self.monitor.snapshot()['agents']}")

    def experiment(self, name: str, **sections: Any) -> Path:
        """An experiment file for stage/orders; ``sections`` replace the defaults."""
        data: dict[str, Any] = {
            "title": f"test: {name}",
            "inventory": str(self.inventory),
            "group": GROUP,
            "monitor": {"url": self.monitor.url},
            "hypothesis": {"window": "2s", "thresholds": ["success>=99%"]},
            "load": {"shape": "steady:users=4,ramp=1s", "pacing": "0.1s"},
            "timings": {"warmup": "2s", "baseline": "3s", "recovery": "4s"},
            "method": [{"fault": {"action": "stop", "targets": ["orders-2"], "duration": "5s"}}],
            "drivers": {"fleetsim": {"fleet_json": str(self.fleet.directory / "fleet.json")}},
        }
        data.update(sections)
        path = self.directory / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path


def _inventory(fleet: SimFleet, directory: Path, port: int, bundle: Path) -> Path:
    data = yaml.safe_load((fleet.directory / "inventory.yaml").read_text())
    data.setdefault("defaults", {}).setdefault("tls", {})["ca_bundle"] = str(bundle)
    for env in data["environments"]:
        for group in env["groups"]:
            group["api_checks"] = [c for c in group["api_checks"] if c["name"] == "list-orders"]
            if f"{env['name']}/{group['name']}" == GROUP:
                group["entrypoint"] = f"https://127.0.0.1:{port}"
                for agent in group["agents"]:
                    agent["tls"] = {"server_name": f"{agent['name']}.orders.stage.test"}
    path = directory / "inventory.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def haproxy_config(stack_dir: Path, inventory: Path, port: int, stats_port: int,
                   env: dict[str, str], *, checks: bool = True) -> Path:  # fmt: skip
    """HAProxy's configuration for stage/orders; ``checks=False``: a naive balancer (no
    health checks, no retries), to show what the checks buy."""
    front = stack_dir / "front.pem"
    config = stack_dir / ("haproxy.cfg" if checks else "haproxy-naive.cfg")
    made = agentha(
        "lb", "haproxy-config", "-c", str(inventory), "--group", GROUP,
        "--bind", f"127.0.0.1:{port}", "--cert", str(front), "--stats", f"127.0.0.1:{stats_port}",
        "--inter", "0.5", "--fastinter", "0.2", "-o", str(config), env=env,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    if not checks:
        naive = []
        for line in config.read_text().splitlines():
            if line.strip().startswith(("retry-on", "option redispatch")):
                continue
            if line.strip().startswith("retries"):
                line = "    retries 0"
            naive.append(line.replace("default-server check ", "default-server "))
        config.write_text("\n".join(naive) + "\n")
    return config


@contextlib.contextmanager
def chaos_stack(directory: Path, *, checks: bool = True) -> Iterator[Stack]:
    directory.mkdir(parents=True, exist_ok=True)
    fleet_file = directory / "fleet.yaml"
    fleet_file.write_text(FLEET)
    with start_sim(directory / "fleet", "--fleet", str(fleet_file), "--workers", "0") as fleet:
        front, front_ca = front_certificate(directory)
        assert front == directory / "front.pem"
        bundle = directory / "ca-bundle.pem"
        bundle.write_bytes(fleet.ca_file.read_bytes() + front_ca.read_bytes())
        port, stats_port = free_port(), free_port()
        inventory = _inventory(fleet, directory, port, bundle)
        env = {**os.environ, **fleet.secrets}
        config = haproxy_config(directory, inventory, port, stats_port, env, checks=checks)
        with (
            haproxy_process(config, env),
            monitor_process(inventory, fleet.secrets, *MONITOR_ARGS) as monitor,
        ):
            stack = Stack(fleet, inventory, monitor, config, stats_port, directory)
            stack.wait_settled(30)
            yield stack
