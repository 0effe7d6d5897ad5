"""Scheduler: grid without drift, no pile-up, fast re-probe, concurrency bound, lag."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time

import pytest
from aio_helpers import background

from monitor.collector import MonitorCollector
from monitor.scheduler import Job, LagStats, Scheduler
from monitor.state import StateStore

pytestmark = pytest.mark.timeout(20)


@contextlib.asynccontextmanager
async def running(scheduler: Scheduler):
    async with background(scheduler.run()):
        yield scheduler


def recorder(starts: list[float], *, ok: bool = True, duration: float = 0.0):
    loop = asyncio.get_running_loop()

    async def run() -> bool:
        starts.append(loop.time())
        if duration:
            await asyncio.sleep(duration)
        return ok

    return run


class LateFirstRuns(random.Random):
    """First runs at the end of their spread (10 s here): only the test's triggers run."""

    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.mark.asyncio
async def test_runs_on_a_grid_without_drift() -> None:
    starts: list[float] = []
    scheduler = Scheduler(jitter=0, rng=random.Random(1))
    # Each run takes 60% of the interval: a scheduler that waits "interval after the end"
    # would drift by 60% per run.
    scheduler.set_jobs([Job("a", recorder(starts, duration=0.03), interval=0.05, timeout=1)])
    async with running(scheduler):
        await asyncio.sleep(1.0)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert 16 <= len(starts) <= 21
    # On the grid the mean gap is the interval; a drifting scheduler would show 0.08.
    assert sum(gaps) / len(gaps) < 0.06
    assert scheduler.missed == 0
    assert scheduler.lag.count == len(starts)


@pytest.mark.asyncio
async def test_a_hung_job_is_not_piled_up_and_missed_slots_are_counted() -> None:
    starts: list[float] = []
    scheduler = Scheduler(jitter=0)
    scheduler.set_jobs([Job("hang", recorder(starts, duration=10), interval=0.05, timeout=0.5)])
    async with running(scheduler):
        await asyncio.sleep(0.8)
        assert scheduler.in_flight <= 1
    assert len(starts) == 2  # one run until the timeout at 0.5 s, then the next slot
    assert scheduler.timeouts == 1
    assert scheduler.missed >= 8


@pytest.mark.asyncio
async def test_failure_brings_a_fast_re_probe() -> None:
    starts: list[float] = []
    scheduler = Scheduler(jitter=0, rng=LateFirstRuns())
    job = Job("f", recorder(starts, ok=False), interval=10, timeout=1, fast_interval=0.05)
    scheduler.set_jobs([job])
    async with running(scheduler):
        scheduler.trigger("f")
        await asyncio.sleep(0.5)
    # Without fast re-probe there would be at most one run in 0.5 s at a 10 s interval.
    assert len(starts) >= 5
    assert scheduler.failures == len(starts)


@pytest.mark.asyncio
async def test_success_returns_to_the_normal_interval() -> None:
    starts: list[float] = []
    # Seeded: the job's first grid slot falls 1.3 s after start, outside the window we watch.
    scheduler = Scheduler(jitter=0, rng=random.Random(1))
    job = Job("s", recorder(starts, ok=True), interval=10, timeout=1, fast_interval=0.05)
    scheduler.set_jobs([job])
    async with running(scheduler):
        scheduler.trigger("s")
        await asyncio.sleep(0.4)
    assert len(starts) == 1


@pytest.mark.asyncio
async def test_concurrency_is_bounded_and_waiting_shows_as_lag() -> None:
    active = 0
    peak = 0

    async def run() -> bool:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.1)
        active -= 1
        return True

    scheduler = Scheduler(concurrency=3, jitter=0, first_run_spread=0.1)
    scheduler.set_jobs([Job(f"j{i}", run, interval=5, timeout=1) for i in range(9)])
    async with running(scheduler):
        # First runs that find every run taken are put off, not queued: wait for all nine.
        deadline = asyncio.get_running_loop().time() + 4
        while scheduler.runs < 9:
            assert asyncio.get_running_loop().time() < deadline, "first runs did not happen"
            await asyncio.sleep(0.05)
        assert scheduler.deferred >= 1
        await asyncio.sleep(0.15)
        peak, runs, scheduler.lag = 0, scheduler.runs, LagStats()
        for i in range(9):
            scheduler.trigger(f"j{i}")
        await asyncio.sleep(0.5)
    assert peak == 3
    assert scheduler.runs - runs == 9
    assert scheduler.lag.quantile(0.99) >= 0.15  # the last three waited two rounds


@pytest.mark.asyncio
async def test_first_runs_wait_while_the_scheduler_is_behind_known_jobs_do_not() -> None:
    loop = asyncio.get_running_loop()
    old: list[float] = []
    new: list[float] = []
    scheduler = Scheduler(jitter=0, first_run_spread=0.0)
    known = Job("old", recorder(old), interval=0.3, timeout=0.2)
    scheduler.set_jobs([known])
    deadline = loop.time() + 2
    async with running(scheduler):
        while not old:
            assert loop.time() < deadline, "the known job did not run"
            await asyncio.sleep(0.01)
        scheduler.set_jobs([known, Job("new", recorder(new), interval=0.3, timeout=0.2)])
        time.sleep(0.8)  # noqa: ASYNC251 - the loop stopped on purpose: all due meanwhile is late
        unblocked = loop.time()
        await asyncio.sleep(0.5)
        assert min(t for t in old if t >= unblocked) - unblocked < 0.1  # at once
        assert new == []  # put off by 1 to 2 s
        assert scheduler.deferred == 1
        exported = {
            sample.name: sample.value
            for family in MonitorCollector(StateStore({}), scheduler, "test").collect()
            for sample in family.samples
        }
        assert exported["agentha_probe_first_runs_deferred_total"] == 1
        await asyncio.sleep(1.8)
    assert new and new[0] - unblocked >= 0.9


@pytest.mark.asyncio
async def test_exceptions_count_as_failures_and_do_not_stop_the_scheduler() -> None:
    calls = 0

    async def broken() -> bool:
        nonlocal calls
        calls += 1
        raise RuntimeError("bug")

    scheduler = Scheduler(jitter=0)
    scheduler.set_jobs([Job("b", broken, interval=0.05, timeout=1)])
    async with running(scheduler):
        await asyncio.sleep(0.3)
    assert calls >= 4 and scheduler.failures == calls


@pytest.mark.asyncio
async def test_set_jobs_keeps_the_grid_of_known_jobs_and_drops_removed_ones() -> None:
    starts_a: list[float] = []
    starts_b: list[float] = []
    scheduler = Scheduler(jitter=0)
    scheduler.set_jobs([Job("a", recorder(starts_a), interval=0.1, timeout=1)])
    async with running(scheduler):
        await asyncio.sleep(0.35)
        scheduler.set_jobs([Job("b", recorder(starts_b), interval=0.1, timeout=1)])
        # A run of "a" dispatched in the same loop turn as set_jobs may still start: let it.
        await asyncio.sleep(0)
        before = len(starts_a)
        await asyncio.sleep(0.35)
    assert len(starts_a) == before  # removed
    assert len(starts_b) >= 3
    assert scheduler.job_count == 1


def test_jobs_reject_bad_timings() -> None:
    async def run() -> bool:
        return True

    with pytest.raises(ValueError, match="x: interval"):
        Job("x", run, interval=0, timeout=1)


def hedged_job(main_starts: list[float], hedge_starts: list[float], *, main: float, hedge: float):
    """A passing job whose runs take ``main`` seconds and whose hedges take ``hedge``."""
    return Job(
        "h",
        recorder(main_starts, duration=main),
        interval=10,
        timeout=0.5,
        fast_interval=0.1,
        hedge=recorder(hedge_starts, duration=hedge),
        hedge_after=0.1,
    )


@pytest.mark.asyncio
async def test_a_slow_run_gets_a_hedge_after_hedge_after_and_a_hung_one_fails_twice() -> None:
    main: list[float] = []
    hedges: list[float] = []
    scheduler = Scheduler(jitter=0, rng=LateFirstRuns())
    scheduler.set_jobs([hedged_job(main, hedges, main=10, hedge=10)])  # both hang
    async with running(scheduler):
        scheduler.trigger("h")
        await asyncio.sleep(0.7)
    assert len(hedges) == 1 and 0.08 <= hedges[0] - main[0] <= 0.2
    # Both cut off at their own full timeout, one hedge_after apart.
    assert scheduler.timeouts == 2 and scheduler.failures == 2 and scheduler.hedges == 1
    # Then the fast re-probe after the failure (0.6 s), without a hedge of its own.
    assert scheduler.runs == 3 and len(main) == 2


@pytest.mark.asyncio
async def test_no_hedge_for_a_quick_run_nor_after_a_failed_one() -> None:
    main: list[float] = []
    hedges: list[float] = []
    scheduler = Scheduler(jitter=0, rng=LateFirstRuns())
    scheduler.set_jobs([hedged_job(main, hedges, main=0.02, hedge=0)])
    async with running(scheduler):
        scheduler.trigger("h")
        await asyncio.sleep(0.3)
    assert main and not hedges  # answered within hedge_after

    failing: list[float] = []
    job = Job(
        "f",
        recorder(failing, ok=False, duration=0.2),
        interval=10,
        timeout=1,
        fast_interval=0.05,
        hedge=recorder(hedges),
        hedge_after=0.1,
    )
    scheduler = Scheduler(jitter=0, rng=LateFirstRuns())
    scheduler.set_jobs([job])
    async with running(scheduler):
        scheduler.trigger("f")
        await asyncio.sleep(0.6)
    # The first run was passing-state, slow: one hedge. Its re-probes follow a failure: none.
    assert len(failing) >= 2 and len(hedges) == 1


@pytest.mark.asyncio
async def test_hedges_in_flight_are_bounded() -> None:
    hedges: list[float] = []
    scheduler = Scheduler(jitter=0, rng=LateFirstRuns(), max_hedges=2)
    jobs = [
        Job(
            f"j{i}",
            recorder([], duration=0.4),
            interval=10,
            timeout=1,
            hedge=recorder(hedges, duration=0.4),
            hedge_after=0.05,
        )
        for i in range(5)
    ]
    scheduler.set_jobs(jobs)
    async with running(scheduler):
        for i in range(5):
            scheduler.trigger(f"j{i}")
        await asyncio.sleep(0.3)
    assert len(hedges) == 2 and scheduler.hedges == 2


def test_hedge_settings_are_checked() -> None:
    async def run() -> bool:
        return True

    with pytest.raises(ValueError, match="go together"):
        Job("x", run, interval=1, timeout=1, hedge=run)
    with pytest.raises(ValueError, match="between 0 and the timeout"):
        Job("x", run, interval=1, timeout=1, hedge=run, hedge_after=1)


@pytest.mark.asyncio
async def test_fast_re_probes_stop_once_down_and_confirm_a_recovery() -> None:
    starts: list[float] = []
    healthy = False

    async def run() -> bool:
        starts.append(asyncio.get_running_loop().time())
        return healthy

    scheduler = Scheduler(jitter=0, rng=LateFirstRuns())
    job = Job(
        "d", run, interval=10, timeout=1, fast_interval=0.05, fast_failures=2, fast_recovery=1
    )
    scheduler.set_jobs([job])
    async with running(scheduler):
        scheduler.trigger("d")
        await asyncio.sleep(0.4)
        # The first failure and the one confirming "down" bring fast re-probes; then the
        # job is back on its 10 s interval (a fast re-probe each time would be 8 runs).
        assert len(starts) == 3
        healthy = True
        scheduler.trigger("d")
        await asyncio.sleep(0.3)
        # The first success after failures brings one fast re-probe (rise 2), then none.
        assert len(starts) == 5


@pytest.mark.asyncio
async def test_many_new_jobs_start_at_a_bounded_rate() -> None:
    starts: list[float] = []
    scheduler = Scheduler(jitter=0, first_run_spread=0.1, start_rate=100, rng=random.Random(7))
    # 40 jobs at 100 a second: first runs spread over 0.4 s, not over the 0.1 s spread.
    scheduler.set_jobs([Job(f"j{i}", recorder(starts), interval=10, timeout=1) for i in range(40)])
    t0 = asyncio.get_running_loop().time()
    async with running(scheduler):
        await asyncio.sleep(0.6)
    assert len(starts) == 40
    late = [s for s in starts if s - t0 > 0.15]
    assert len(late) >= 15  # about 30 of 40 expected after 0.1 s
    assert max(starts) - t0 < 0.5


@pytest.mark.asyncio
async def test_runs_due_within_a_tick_start_together() -> None:
    starts: list[float] = []
    scheduler = Scheduler(jitter=0, first_run_spread=0.3, tick=0.1)
    scheduler.set_jobs([Job(f"j{i}", recorder(starts), interval=5, timeout=1) for i in range(30)])
    async with running(scheduler):
        await asyncio.sleep(0.6)
    assert len(starts) == 30
    # 30 due times spread over 0.3 s start in a handful of loop turns, none over a tick late.
    assert len({round(s, 3) for s in starts}) <= 6
    assert scheduler.lag.quantile(1.0) <= 0.15


@pytest.mark.asyncio
async def test_new_jobs_with_short_intervals_start_first() -> None:
    status: list[float] = []
    audits: list[float] = []
    scheduler = Scheduler(jitter=0, first_run_spread=0.1, start_rate=100, rng=random.Random(7))
    jobs = [Job(f"s{i}", recorder(status), interval=5, timeout=1) for i in range(20)]
    jobs += [Job(f"a{i}", recorder(audits), interval=100, timeout=1) for i in range(20)]
    scheduler.set_jobs(jobs)
    t0 = asyncio.get_running_loop().time()
    async with running(scheduler):
        await asyncio.sleep(0.6)
    # The 20 short ones over 20 / 100 s; all 40 over 40 / 100 s.
    assert len(status) == 20 and max(status) - t0 < 0.28
    assert len(audits) == 20 and max(audits) - t0 < 0.5
    assert [a for a in audits if a - t0 > 0.28]  # about half of them expected
