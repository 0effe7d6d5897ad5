"""The monitor against the simulated fleet: every state change comes from a real condition.

The fleet is the demo fleet (tests/conftest.py), with its planted findings:
test/orders/orders-2's certificate expires in 10 days, test/invoices/invoices-2 serves plain
HTTP on an extra port, prod/orders/orders-3 is paused, and prod agents require the key.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aio_helpers import background, until
from prometheus_client import CollectorRegistry, generate_latest

from monitor.collector import MonitorCollector
from monitor.inventory import load_inventory
from monitor.logs import setup_logging
from monitor.service import Monitor, MonitorSettings, ProbeTiming
from monitor.state import AgentState, GroupStatus

pytestmark = pytest.mark.timeout(60)

FAST = MonitorSettings(
    timings={
        "status": ProbeTiming(interval=0.3, timeout=1.0, fast_interval=0.1),
        "tls": ProbeTiming(interval=0.5, timeout=2.0),
        "plaintext": ProbeTiming(interval=0.5, timeout=2.0),
        "entrypoint": ProbeTiming(interval=0.3, timeout=2.0, fast_interval=0.1),
        "auth": ProbeTiming(interval=0.5, timeout=2.0),
    },
    rise=2,
    fall=2,
)


@contextlib.asynccontextmanager
async def running(fleet, environ: dict[str, str] | None = None) -> AsyncIterator[Monitor]:
    inventory = load_inventory(
        fleet.directory / "inventory.yaml", {**fleet.secrets, **(environ or {})}
    )
    monitor = Monitor(inventory, FAST)
    async with background(monitor.run()):
        yield monitor


def state(monitor: Monitor, agent_id: str) -> AgentState:
    return monitor.store.agent(agent_id).state


@pytest.mark.asyncio
async def test_planted_findings_and_paused_agent_at_start(fleet) -> None:
    async with running(fleet) as monitor:
        await until(
            lambda: all(
                monitor.store.group(g).status is not GroupStatus.UNKNOWN
                for g in monitor.store.group_ids
            )
        )
        await until(lambda: state(monitor, "test/invoices/invoices-2") is AgentState.DEGRADED)
        await until(lambda: state(monitor, "test/orders/orders-2") is AgentState.DEGRADED)
        store = monitor.store
        assert store.agent("test/orders/orders-2").all_findings() == ["cert_expiring"]
        assert store.agent("test/invoices/invoices-2").all_findings() == ["http_port_open"]
        assert state(monitor, "prod/orders/orders-3") is AgentState.PAUSED
        assert state(monitor, "test/orders/orders-1") is AgentState.UP
        # prod/orders: 4 agents, one paused, min_healthy 3 -> no spare agent
        assert store.group_counts("prod/orders") == (3, 3, 4)
        assert store.group("prod/orders").status is GroupStatus.AT_RISK
        assert store.group("test/orders").status is GroupStatus.OK


@pytest.mark.parametrize(
    ("condition", "reason"),
    [({"stopped": True}, "refused"), ({"hang": True}, "timeout")],
)
@pytest.mark.asyncio
async def test_stopped_and_hung_agents_go_down_and_come_back(fleet, condition, reason) -> None:
    agent = "test/orders/orders-1"
    async with running(fleet) as monitor:
        await until(lambda: state(monitor, agent) is AgentState.UP)
        fleet.set(agent, **condition)
        await until(lambda: state(monitor, agent) is AgentState.DOWN)
        assert monitor.store.agent(agent).reason == reason
        # Calls the gateway sent to a hung agent fail until it takes the agent out of
        # rotation, so the group may be unavailable for a moment before it settles.
        await until(lambda: monitor.store.group("test/orders").status is GroupStatus.AT_RISK)
        fleet.set(agent, **{key: False for key in condition})
        await until(lambda: state(monitor, agent) is AgentState.UP)
        await until(lambda: monitor.store.group("test/orders").status is GroupStatus.OK)


@pytest.mark.asyncio
async def test_stopped_agent_is_noticed_by_its_dropped_connection(fleet) -> None:
    # A 30 s interval: only the watcher on the kept-alive connection can notice in time.
    slow = MonitorSettings(
        timings={"status": ProbeTiming(interval=30, timeout=1.0, fast_interval=0.2)}, fall=2
    )
    agent = "test/orders/orders-1"
    inventory = load_inventory(fleet.directory / "inventory.yaml", fleet.secrets)
    monitor = Monitor(inventory, slow)
    task = asyncio.create_task(monitor.run())
    try:
        await until(lambda: monitor.scheduler.job_count > 0)
        monitor.scheduler.trigger(f"status:{agent}")
        await until(lambda: state(monitor, agent) is AgentState.UP)
        started = time.monotonic()
        fleet.set(agent, stopped=True)
        await until(lambda: state(monitor, agent) is AgentState.DOWN, within=5)
        assert time.monotonic() - started < 2.0
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.mark.asyncio
async def test_paused_is_paused_not_down(fleet) -> None:
    agent = "test/orders/orders-1"
    async with running(fleet) as monitor:
        await until(lambda: state(monitor, agent) is AgentState.UP)
        fleet.set(agent, paused=True)
        await until(lambda: state(monitor, agent) is AgentState.PAUSED)
        assert monitor.store.group_counts("test/orders")[0] == 1
        events = monitor.store.events.since(0)
        assert not any(e.id == agent and e.new == "down" for e in events)


@pytest.mark.asyncio
async def test_group_goes_from_ok_to_at_risk_to_unavailable(fleet) -> None:
    group = "test/orders"
    async with running(fleet) as monitor:
        await until(lambda: monitor.store.group(group).status is GroupStatus.OK)
        fleet.set("test/orders/orders-1", stopped=True)
        await until(lambda: monitor.store.group(group).status is GroupStatus.AT_RISK)
        fleet.set("test/orders/orders-2", stopped=True)
        await until(lambda: monitor.store.group(group).status is GroupStatus.UNAVAILABLE)
        kinds = [(e.old, e.new) for e in monitor.store.events.since(0) if e.id == group]
        assert kinds[-2:] == [("ok", "at_risk"), ("at_risk", "unavailable")]


@pytest.mark.parametrize(
    ("cert", "reason"),
    [
        ("expired", "cert_expired"),
        ("not_yet_valid", "cert_not_yet_valid"),
        ("wrong_host", "cert_hostname"),
    ],
)
@pytest.mark.asyncio
async def test_bad_certificates_take_the_agent_down_and_keep_their_details(
    fleet, cert, reason
) -> None:
    agent = "test/invoices/invoices-1"
    async with running(fleet) as monitor:
        await until(lambda: state(monitor, agent) is AgentState.UP)
        fleet.set(agent, cert=cert)
        await until(lambda: state(monitor, agent) is AgentState.DOWN)
        assert monitor.store.agent(agent).reason == reason
        await until(lambda: reason in monitor.store.agent(agent).all_findings())
        registry = CollectorRegistry()
        registry.register(MonitorCollector(monitor.store, monitor.scheduler, "t", monitor.ledger))
        labels = {"environment": "test", "group": "invoices", "agent": "invoices-1"}
        expiry = registry.get_sample_value("agentha_tls_leaf_expiry_timestamp_seconds", labels)
        assert expiry is not None  # exported although verification fails
        if cert == "expired":
            assert expiry < time.time()
        if cert == "wrong_host":
            assert registry.get_sample_value("agentha_tls_hostname_match", labels) == 0


@pytest.mark.parametrize(
    ("condition", "finding"),
    [
        ({"legacy_tls": True}, "legacy_tls_accepted"),
        ({"plain_on_tls_port": True}, "plaintext_served"),
    ],
)
@pytest.mark.asyncio
async def test_tls_and_plaintext_findings_degrade_an_up_agent(fleet, condition, finding) -> None:
    agent = "test/orders/orders-1"
    async with running(fleet) as monitor:
        await until(lambda: state(monitor, agent) is AgentState.UP)
        fleet.set(agent, **condition)
        await until(lambda: state(monitor, agent) is AgentState.DEGRADED)
        assert finding in monitor.store.agent(agent).all_findings()
        fleet.reset()
        await until(lambda: state(monitor, agent) is AgentState.UP)


@pytest.mark.asyncio
async def test_wrong_health_check_key_is_unauthorized(fleet) -> None:
    key_name = next(n for n in fleet.secrets if n.startswith("FLEETSIM_PROD") and "HC" in n)
    wrong = {key_name: "Wrong-Key-But-Strong-1!"}
    async with running(fleet, wrong) as monitor:
        agent = "prod/orders/orders-1"
        await until(lambda: state(monitor, agent) is AgentState.DOWN)
        assert monitor.store.agent(agent).reason == "unauthorized"


@pytest.mark.asyncio
async def test_secrets_appear_in_no_log_metric_snapshot_or_event(fleet) -> None:
    secrets = [v for n, v in fleet.secrets.items() if n.startswith("FLEETSIM_PROD")]
    stream = io.StringIO()
    with configured_logging() as (redact, _quiet):
        logging.getLogger("monitor").handlers[0].setStream(stream)
        outputs = await _outputs_of_a_failure(fleet, redact, secrets[0], stream)
    assert "prod/orders/orders-1: up -> down" in outputs["logs"]
    assert "oops ***" in outputs["logs"]
    for name, text in outputs.items():
        for secret in secrets:
            assert secret not in text, name


@contextlib.contextmanager
def configured_logging():
    """The monitor's own logging set-up, undone afterwards for the tests that follow."""
    logger = logging.getLogger("monitor")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    try:
        yield setup_logging("debug")
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved


async def _outputs_of_a_failure(fleet, redact, secret: str, stream: io.StringIO) -> dict[str, str]:
    async with running(fleet) as monitor:
        redact.update(monitor.secret_values())
        agent = "prod/orders/orders-1"
        await until(lambda: state(monitor, agent) is AgentState.UP)
        fleet.set(agent, stopped=True)
        await until(lambda: state(monitor, agent) is AgentState.DOWN)
        # A careless log line would still be caught by the redaction filter.
        logging.getLogger("monitor.test").warning("oops %s", secret)
        registry = CollectorRegistry()
        registry.register(MonitorCollector(monitor.store, monitor.scheduler, "t", monitor.ledger))
        return {
            "metrics": generate_latest(registry).decode(),
            "snapshot": json.dumps(monitor.snapshot()),
            "events": json.dumps([e.to_dict() for e in monitor.store.events.since(0)]),
            "logs": stream.getvalue(),
            "repr": repr(monitor.inventory) + repr(list(monitor._targets.values())),
        }


def test_inventory_written_by_the_simulator_is_valid(sim_fleet) -> None:
    inventory = load_inventory(Path(sim_fleet.directory) / "inventory.yaml", sim_fleet.secrets)
    assert inventory.findings == ()
    assert sum(1 for _ in inventory.agents()) == len(sim_fleet.agents)


@pytest.mark.asyncio
async def test_failing_api_checks_make_the_group_unavailable_while_agents_are_up(fleet) -> None:
    group = "test/orders"
    async with running(fleet) as monitor:
        await until(lambda: monitor.store.group(group).status is GroupStatus.OK)
        await until(lambda: monitor.store.group(group).entrypoint_ok is True)
        registry = CollectorRegistry()
        registry.register(MonitorCollector(monitor.store, monitor.scheduler, "t", monitor.ledger))
        await until(lambda: len(monitor.store.group(group).checks) == 3)
        for check in monitor.store.group(group).checks:
            labels = {"environment": "test", "group": "orders", "check": check}
            assert registry.get_sample_value("agentha_entrypoint_success", labels) == 1
        # The fleet's APIs require credentials: the auth audit finds nothing to report.
        await until(
            lambda: (
                registry.get_sample_value(
                    "agentha_api_unauthenticated_accepted",
                    {"environment": "test", "group": "orders", "check": "list-orders"},
                )
                == 0
            )
        )
        for agent in ("test/orders/orders-1", "test/orders/orders-2"):
            fleet.set(agent, error_rate=1.0)
        await until(lambda: monitor.store.group(group).status is GroupStatus.UNAVAILABLE)
        assert monitor.store.group(group).reason.startswith("entrypoint ")
        assert "unexpected_status" in monitor.store.group(group).reason
        assert state(monitor, "test/orders/orders-1") is AgentState.UP
