"""Hedged status probes against the simulated fleet: a hung agent is confirmed down by two
probes about a fast interval apart; a slow but alive one gets hedges and never fails."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from aio_helpers import background, until

from monitor.collector import MonitorCollector
from monitor.inventory import load_inventory
from monitor.service import Monitor, MonitorSettings, ProbeTiming
from monitor.state import AgentState

pytestmark = pytest.mark.timeout(60)

AGENT = "test/orders/orders-1"
# A 30 s interval: every probe in a test is one it asked for, or a fast re-probe.
SETTINGS = MonitorSettings(
    timings={"status": ProbeTiming(interval=30, timeout=1.0, fast_interval=0.2)}, fall=2
)


@contextlib.asynccontextmanager
async def running(fleet) -> AsyncIterator[Monitor]:
    monitor = Monitor(load_inventory(fleet.directory / "inventory.yaml", fleet.secrets), SETTINGS)
    async with background(monitor.run()):
        await until(lambda: monitor.scheduler.job_count > 0)
        yield monitor


def up(monitor: Monitor) -> bool:
    return monitor.store.agent(AGENT).state is AgentState.UP


@pytest.mark.asyncio
async def test_a_hung_agent_is_down_one_fast_interval_after_the_first_timeout(fleet) -> None:
    async with running(fleet) as monitor:
        monitor.scheduler.trigger(f"status:{AGENT}")
        await until(lambda: up(monitor))
        fleet.set(AGENT, hang=True)
        started = time.monotonic()
        monitor.scheduler.trigger(f"status:{AGENT}")
        await until(lambda: monitor.store.agent(AGENT).state is AgentState.DOWN, within=5)
        took = time.monotonic() - started
        # Without the hedge: timeout + fast interval + timeout (2.2 s and more). With it: the
        # second probe started 0.2 s after the first, each with its full 1 s timeout.
        assert took < 1.8, took
        assert monitor.store.agent(AGENT).reason == "timeout"
        assert monitor.ledger.failures[(AGENT, "status", "timeout")] == 2
        assert monitor.scheduler.hedges == 1
        exported = {
            sample.name: sample.value
            for family in MonitorCollector(monitor.store, monitor.scheduler, "test").collect()
            for sample in family.samples
        }
        assert exported["agentha_probe_hedges_total"] == 1


@pytest.mark.asyncio
async def test_a_slow_agent_gets_hedges_and_stays_up(fleet) -> None:
    async with running(fleet) as monitor:
        monitor.scheduler.trigger(f"status:{AGENT}")
        await until(lambda: up(monitor))
        fleet.set(AGENT, slow_ms=500)  # slower than the fast interval, within the timeout
        for _ in range(3):
            runs = monitor.scheduler.runs
            monitor.scheduler.trigger(f"status:{AGENT}")
            await until(lambda r=runs: monitor.scheduler.runs >= r + 2)  # the probe, its hedge
            await until(lambda: monitor.scheduler.in_flight == 0)
            assert up(monitor)
        assert monitor.scheduler.hedges >= 3
        assert not [k for k in monitor.ledger.failures if k[0] == AGENT]
        # The kept-alive connection is still in use: the hedges' connections were closed.
        session = monitor._sessions[AGENT]
        assert session.status_connection is not None and session.status_connection.requests >= 3
