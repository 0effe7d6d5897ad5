"""End to end: a real Prometheus scrapes a real `agentha monitor` watching the simulated fleet.

The rules are generated from prometheus/alerts.yaml with every `for` cut to 2 s and scrape and
evaluation every second, so an agent stopped through the fleet's control API shows up as
firing alerts in Prometheus' /api/v1/alerts within seconds, and they resolve once it is back.
The dashboards' queries run against the same Prometheus; the monitor audits the fleet's APIs once
at start (cheap: about 400 requests) and is told of a chaos run holding a fault, so the audit and
chaos panels have data too.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from conftest import ROOT, load_generator

from monitor.client import MonitorClient

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]

# Its group has 2 agents and needs 1: stopping it leaves no spare.
STOPPED = "test/orders/orders-1"
# Metrics `agentha monitor` does not fill yet (no entrypoint or auth probes scheduled from the
# command line); their panels are checked as soon as it exports samples.
PENDING = {
    "agentha_entrypoint_success": "no samples from agentha monitor yet (entrypoint probe)",
    "agentha_api_unauthenticated_accepted": "no samples from agentha monitor yet (auth probe)",
}
FLEET_VALUES = {
    "environment": ".*",
    "group": ".*",
    "agent": ".*",
    "__rate_interval": "10s",
    "__range": "5m",
}
DETAIL_VALUES = {
    "environment": "test",
    "group": "orders",
    "agent": "orders-2",
    "__rate_interval": "10s",
    "__range": "5m",
}
# A chaos run as `agentha chaos run` reports it, holding a fault on the agent detail's agent.
CHAOS_RUN = "e2e-dashboards"
CHAOS_REPORT = {
    "experiment": "stop-one-agent",
    "title": "dashboards end to end",
    "group": "test/orders",
    "phase": "fault",
    "verdict": None,
    "faults": [{"agent": "test/orders/orders-2", "action": "stop"}],
}


def _dashboard_queries():
    spec = importlib.util.spec_from_file_location(
        "dashboard_queries", ROOT / "tests" / "dashboards" / "dashboard_queries.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


dq = _dashboard_queries()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read())


def until(check: Callable[[], Any], within: float, what: str) -> Any:
    deadline = time.monotonic() + within
    while True:
        with contextlib.suppress(OSError):
            result = check()
            if result:
                return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {within:.0f} s")
        time.sleep(0.25)


@dataclass
class Stack:
    monitor_url: str
    prometheus_url: str

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        answer = get_json(url)
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def alerts(self) -> list[dict[str, Any]]:
        return get_json(f"{self.prometheus_url}/api/v1/alerts")["data"]["alerts"]

    def firing(self, name: str, **labels: str) -> bool:
        return any(
            a["labels"]["alertname"] == name
            and a["state"] == "firing"
            and all(a["labels"].get(k) == v for k, v in labels.items())
            for a in self.alerts()
        )

    def active(self, name: str, **labels: str) -> bool:
        return any(
            a["labels"]["alertname"] == name
            and all(a["labels"].get(k) == v for k, v in labels.items())
            for a in self.alerts()
        )


@contextlib.contextmanager
def running(args: list[str], env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen(
        args,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def monitor_url(proc: subprocess.Popen, within: float = 30) -> str:
    """Read the monitor's stderr until it says where it serves; keep draining it after."""
    found: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for line in proc.stderr:
            match = re.search(r"serving (http://\S+)", line)
            if match and not found:
                found.append(match[1])
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(within) or not found:
        raise AssertionError("agentha monitor did not start")
    return found[0]


@pytest.fixture(scope="module")
def stack(sim_fleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("prometheus")
    generator = load_generator()
    rules = work / "agentha.rules.yml"
    rules.write_text(
        generator.dump(generator.prometheus_rules(generator.load_definition(), max_for="2s"))
    )
    monitor_args = [
        sys.executable,
        "-m",
        "agentha",
        "monitor",
        "-c",
        str(sim_fleet.directory / "inventory.yaml"),
        "--listen",
        "127.0.0.1:0",
        "--status-interval",
        "0.5",
        "--fast-interval",
        "0.25",
        "--status-timeout",
        "1",
        "--tls-interval",
        "2",
        "--plaintext-interval",
        "2",
        "--entrypoint-interval",
        "1",
        "--auth-interval",
        "2",
        "--audit-interval",
        "3600",
    ]
    with running(monitor_args, env=sim_fleet.secrets) as monitor:
        url = monitor_url(monitor)
        target = urllib.parse.urlsplit(url).netloc
        config = {
            "global": {
                "scrape_interval": "1s",
                "evaluation_interval": "1s",
                "scrape_timeout": "1s",
            },
            "rule_files": [str(rules)],
            "scrape_configs": [{"job_name": "agentha", "static_configs": [{"targets": [target]}]}],
        }
        (work / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        prometheus_args = [
            "prometheus",
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ]
        with running(prometheus_args) as prometheus:
            stack = Stack(url, f"http://127.0.0.1:{port}")
            until(
                lambda: (
                    prometheus.poll() is not None
                    or get_json(f"{stack.prometheus_url}/api/v1/query?query=up")["data"]["result"]
                ),
                within=30,
                what="Prometheus ready and scraping",
            )
            assert prometheus.poll() is None, prometheus.stderr.read()
            yield stack


def test_agent_down_and_no_spare_fire_then_resolve(stack: Stack, fleet) -> None:
    environment, group, agent = STOPPED.split("/")
    where = {"environment": environment, "group": group}
    until(
        lambda: stack.query(f'agentha_agent_up{{agent="{agent}",group="{group}"}} == 1'),
        within=20,
        what="agent up before the fault",
    )
    assert not stack.active("AgenthaAgentDown", agent=agent, **where)
    assert not stack.active("AgenthaGroupNoSpare", **where)

    fleet.set(STOPPED, stopped=True)
    until(
        lambda: (
            stack.firing("AgenthaAgentDown", agent=agent, **where)
            and stack.firing("AgenthaGroupNoSpare", **where)
        ),
        within=25,
        what="AgenthaAgentDown and AgenthaGroupNoSpare firing",
    )
    down = next(
        a
        for a in stack.alerts()
        if a["labels"]["alertname"] == "AgenthaAgentDown" and a["labels"].get("agent") == agent
    )
    assert down["labels"]["severity"] == "warning"
    assert down["annotations"]["runbook_url"].endswith("docs/runbooks.md#agent-down")
    assert down["annotations"]["summary"] == f"Agent {STOPPED} is down"

    fleet.set(STOPPED, stopped=False)
    until(
        lambda: (
            not stack.active("AgenthaAgentDown", agent=agent, **where)
            and not stack.active("AgenthaGroupNoSpare", **where)
        ),
        within=25,
        what="both alerts resolved",
    )


def exposition_names(text: str, *, sampled: bool = False) -> set[str]:
    """Metric names in a Prometheus text exposition (``sampled``: only those with samples)."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE ") and not sampled:
            _, _, name, kind = line.split()
            names.add(name)
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
            elif kind == "counter":
                names.add(f"{name}_total")  # the family is named without it
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def panel_queries() -> list[tuple[str, str]]:
    out = []
    for name, dashboard in dq.load().items():
        values = DETAIL_VALUES if name == "agent-detail.json" else FLEET_VALUES
        for panel, expr in dq.queries(dashboard):
            out.append(
                (f"{name} panel {panel['id']} {panel['title']!r}", dq.substitute(expr, values))
            )
        for annotation, expr in dq.annotation_queries(dashboard):
            out.append((f"{name} annotation {annotation['name']!r}", dq.substitute(expr, values)))
    return out


def report_chaos(monitor: str, phase: str, verdict: str | None = None) -> None:
    async def send() -> None:
        async with MonitorClient(monitor) as client:
            await client.report_chaos(
                CHAOS_RUN,
                {
                    **CHAOS_REPORT,
                    "started": started,
                    "phase": phase,
                    "verdict": verdict,
                    "faults": CHAOS_REPORT["faults"] if phase != "done" else [],
                },
            )

    started = time.time()
    asyncio.run(send())


@pytest.fixture
def chaos_run(stack: Stack) -> Iterator[None]:
    """A chaos run holding a fault, reported to the monitor until the test ends."""
    report_chaos(stack.monitor_url, "fault")
    try:
        yield
    finally:
        report_chaos(stack.monitor_url, "done", "pass")


def recorded_names() -> set[str]:
    document = yaml.safe_load((ROOT / "prometheus" / "rules" / "agentha.rules.yml").read_text())
    return {r["record"] for g in document["groups"] for r in g["rules"] if "record" in r}


def test_every_dashboard_metric_is_exported_and_every_panel_returns_data(
    stack: Stack, fleet, chaos_run
) -> None:
    with urllib.request.urlopen(f"{stack.monitor_url}/metrics", timeout=5) as answer:
        exported = exposition_names(answer.read().decode())
    assert {
        "agentha_chaos_run_active",
        "agentha_chaos_fault_active",
        "agentha_chaos_runs_ended_total",
        "agentha_audit_finding",
        "agentha_audit_check_error",
    } <= exported
    known = exported | recorded_names() | {"up"}  # `up` is Prometheus' own
    queries = panel_queries()
    named = set().union(*(dq.metric_names(expr) for _, expr in queries))
    assert named - known - set(PENDING) == set(), "dashboards name metrics nobody exports"

    ready = [(where, expr) for where, expr in queries if not dq.metric_names(expr) & set(PENDING)]
    # Rates need two scrapes in their window and TLS facts a first audit: wait for them.
    empty: list[str] = []

    def all_have_data() -> bool:
        empty[:] = [f"{where}: {expr}" for where, expr in ready if not stack.query(expr)]
        return not empty

    with contextlib.suppress(AssertionError):
        until(all_have_data, within=20, what="data")
    assert not empty, "panels without data:\n" + "\n".join(empty)


def test_pending_metrics_are_exported_and_shown(stack: Stack, fleet) -> None:
    with urllib.request.urlopen(f"{stack.monitor_url}/metrics", timeout=5) as answer:
        exported = exposition_names(answer.read().decode(), sampled=True)
    missing = {name: why for name, why in PENDING.items() if name not in exported}
    if missing:
        pytest.skip("; ".join(f"{name}: {why}" for name, why in sorted(missing.items())))
    for where, expr in panel_queries():
        if dq.metric_names(expr) & set(PENDING):
            until(lambda expr=expr: stack.query(expr), within=20, what=f"data for {where}")
