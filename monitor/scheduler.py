"""The scheduler: runs every probe job on its own fixed grid, bounded and measured.

- No drift: the next run is due one interval after the previous *due* time, not after the run
  ended, so slow probes do not stretch the schedule.
- No pile-up: a job never runs twice at once; a slot that comes while the previous run is still
  going is skipped and counted as missed.
- Fast re-probe: after a failure the job runs again after ``fast_interval`` (HAProxy's
  ``fastinter``), so rise/fall thresholds are crossed in seconds, not intervals; ``trigger()``
  asks for a run at once (a kept-alive connection dropped). Only while a change is being
  confirmed: after ``fast_failures`` failures in a row (the fall threshold: the target is down)
  the job is back on its interval, as HAProxy's ``downinter`` defaults to ``inter``, so a
  thousand targets down do not bring a thousand probes a second; the first success after
  failures brings ``fast_recovery`` fast re-probes (rise threshold - 1) to confirm it.
- Hedged confirmation: a job with a ``hedge`` whose run has not ended ``hedge_after`` seconds
  after it started, while the job was passing, gets a second, independent run (``hedge``, a
  fresh connection) alongside. Each keeps its full timeout, so a slow but alive target passes
  both; a hung one fails both about ``hedge_after`` apart, instead of one timeout after the
  other. At most ``max_hedges`` are in flight, so an overloaded monitor or fleet gets no
  extra load from them.
- Bounded: at most ``concurrency`` runs in flight; every run is cut off at its ``timeout``
  (the deadline lives here, not in each prober).
- Measured: lag is the time from a run's due time to its start; runs due within one ``tick``
  (50 ms) start together, so lag is up to a tick by design.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# Upper bounds (seconds) of the lag histogram buckets; Prometheus style, cumulative on export.
# A first run that comes due while the dispatcher is this late (or with every run taken) is put
# off by DEFER_BY to 2 x DEFER_BY seconds (see Scheduler._defer).
DEFER_AFTER = 0.5
DEFER_BY = 1.0
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass(frozen=True, slots=True)
class Job:
    """A repeated probe: ``run`` returns True on success; its exceptions count as failures."""

    key: str
    run: Callable[[], Awaitable[bool]]
    interval: float
    timeout: float
    fast_interval: float | None = None
    hedge: Callable[[], Awaitable[bool]] | None = None
    hedge_after: float | None = None
    fast_failures: int | None = None  # None: a fast re-probe after every failure
    fast_recovery: int = 0

    def __post_init__(self) -> None:
        if self.interval <= 0 or self.timeout <= 0:
            raise ValueError(f"{self.key}: interval and timeout must be positive")
        if self.fast_interval is not None and self.fast_interval <= 0:
            raise ValueError(f"{self.key}: fast_interval must be positive")
        if (self.hedge is None) != (self.hedge_after is None):
            raise ValueError(f"{self.key}: hedge and hedge_after go together")
        if self.hedge_after is not None and not 0 < self.hedge_after < self.timeout:
            raise ValueError(f"{self.key}: hedge_after must be between 0 and the timeout")


@dataclass(slots=True)
class LagStats:
    """Cumulative lag figures, read by the Prometheus collector."""

    count: int = 0
    total: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * len(LAG_BUCKETS))
    recent: list[float] = field(default_factory=list)  # a bounded window for quantiles

    def add(self, lag: float, keep: int = 4096) -> None:
        self.count += 1
        self.total += lag
        for i, bound in enumerate(LAG_BUCKETS):
            if lag <= bound:
                self.buckets[i] += 1
                break
        self.recent.append(lag)
        if len(self.recent) > keep:
            del self.recent[: len(self.recent) - keep]

    def quantile(self, q: float) -> float | None:
        if not self.recent:
            return None
        ordered = sorted(self.recent)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass(slots=True)
class _Slot:
    job: Job
    due: float  # the next due time on the job's grid
    generation: int = 0  # bumps when the heap entry for this slot is replaced
    running: bool = False
    failed: bool = False
    fails: int = 0  # failed runs in a row
    recovering: int = 0  # fast re-probes still due to confirm a recovery
    started: bool = False  # had its first run


class Scheduler:
    def __init__(
        self,
        *,
        concurrency: int = 512,
        jitter: float = 0.05,
        first_run_spread: float = 60.0,
        start_rate: float = 150.0,
        tick: float = 0.05,
        max_hedges: int = 64,
        rng: random.Random | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if start_rate <= 0:
            raise ValueError("start_rate must be positive")
        self._free = concurrency  # runs that may still start (the concurrency bound)
        self._free_waiter: asyncio.Future[None] | None = None
        self._max_tick = self._tick = tick
        self._max_hedges = max_hedges
        self._hedging = 0
        self._jitter = jitter
        self._first_run_spread = first_run_spread
        self._start_rate = start_rate
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self._slots: dict[str, _Slot] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._waker: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.lag = LagStats()
        self.runs = 0
        self.failures = 0
        self.timeouts = 0
        self.missed = 0
        self.hedges = 0  # hedge runs started (also counted in runs)
        self.first_runs_by = 0.0  # loop time by which every job installed so far first ran
        self.deferred = 0  # first runs put off because the dispatcher was behind

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    @property
    def job_count(self) -> int:
        return len(self._slots)

    def set_jobs(self, jobs: Iterable[Job]) -> None:
        """Install the job list; jobs already known keep their place on the grid."""
        now = asyncio.get_running_loop().time()
        jobs = list(jobs)
        old, self._slots = self._slots, {}
        # A tick stays a small part of every interval (tests and demos use short ones).
        self._tick = min([self._max_tick, *(job.interval / 10 for job in jobs)])
        # New jobs start at most about `start_rate` a second: each first run makes a new
        # connection (TLS handshakes on both sides), and ten thousand of them within one
        # status interval take more CPU than a small machine has. Jobs with short intervals
        # (status) come first: a job's first runs are spread over the time the new jobs with
        # an interval no longer than its own take at that rate, so status probes know every
        # agent before the audits are done. Below start_rate x interval new jobs this
        # changes nothing.
        new = sorted(job.interval for job in jobs if job.key not in old)
        ahead = {interval: bisect.bisect_right(new, interval) for interval in set(new)}
        for job in jobs:
            slot = old.get(job.key)
            if slot is None:
                # Spread first runs so probes do not come in waves, but not over a whole long
                # interval: a TLS audit every 5 min should still report soon after start.
                at_rate = ahead[job.interval] / self._start_rate
                spread = max(min(job.interval, self._first_run_spread), at_rate)
                slot = _Slot(job, now + self._rng.uniform(0, spread))
                self.first_runs_by = max(self.first_runs_by, slot.due)
            else:
                slot.job = job
            self._slots[job.key] = slot
            self._push(job.key, slot, slot.due)
        self._wake()

    def trigger(self, key: str) -> None:
        """Run a job as soon as possible (for example when its connection dropped)."""
        slot = self._slots.get(key)
        if slot is not None and not slot.running:
            self._push(key, slot, asyncio.get_running_loop().time())
            self._wake()

    async def run(self) -> None:
        """Dispatch jobs until cancelled; cancelling also cancels the runs in flight."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                now = loop.time()
                heap = self._heap
                while heap and heap[0][0] <= now:
                    due, generation, key = heapq.heappop(heap)
                    slot = self._slots.get(key)
                    if slot is None or slot.generation != generation:
                        continue  # replaced or removed
                    if not slot.started and (now - due > DEFER_AFTER or not self._free):
                        self._defer(key, slot, now)
                        continue
                    if not slot.running:
                        if not self._free:
                            # At most `concurrency` runs exist at all: when all are busy, the
                            # dispatcher waits here, and the wait shows as lag.
                            await self._wait_free(loop)
                            now = loop.time()
                            if self._slots.get(key) is not slot or slot.generation != generation:
                                continue  # replaced while we waited
                        self._free -= 1
                    self._dispatch(key, slot, due, now)
                    heap = self._heap
                await self._sleep(loop)
        finally:
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- internals ---------------------------------------------------------------------------

    def _wake(self) -> None:
        waker = self._waker
        if waker is not None and not waker.done():
            waker.set_result(None)

    async def _sleep(self, loop: asyncio.AbstractEventLoop) -> None:
        """Until the next due time, but at least one tick away, or until woken (``trigger``, a
        fast re-probe: those start at once).

        Runs due within a tick start together in one loop turn rather than with one wake-up
        each; their replies then come back together too. At 200 status probes a second that
        halves the CPU per probe (bench/README.md) for at most a tick of lag, a tenth of the
        5% jitter a 10 s interval already has.
        """
        waker = self._waker = loop.create_future()
        handle = None
        if self._heap:
            handle = loop.call_at(max(self._heap[0][0], loop.time() + self._tick), self._wake)
        try:
            await waker
        finally:
            self._waker = None
            if handle is not None:
                handle.cancel()

    async def _wait_free(self, loop: asyncio.AbstractEventLoop) -> None:
        while not self._free:
            self._free_waiter = loop.create_future()
            try:
                await self._free_waiter
            finally:
                self._free_waiter = None

    def _release(self) -> None:
        self._free += 1
        waiter = self._free_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _push(self, key: str, slot: _Slot, at: float) -> None:
        slot.generation += 1
        heapq.heappush(self._heap, (at, slot.generation, key))

    def _dispatch(self, key: str, slot: _Slot, due: float, now: float) -> None:
        interval = slot.job.interval
        # Next slot on the grid; slots that already passed are skipped, not run late in a burst.
        skipped = max(0, int((now - slot.due) // interval))
        slot.due += (skipped + 1) * interval if due >= slot.due - 1e-9 else 0
        self.missed += skipped
        if slot.running:
            self.missed += 1  # the previous run is still going: no pile-up
        else:
            slot.running = slot.started = True
            task = asyncio.create_task(self._run_one(key, slot, due))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._push(key, slot, slot.due + self._jitter_for(interval))

    def _defer(self, key: str, slot: _Slot, now: float) -> None:
        """Put a first run off: the dispatcher is behind or every run is taken. New jobs (a
        start, a reload) then wait, not the jobs already running: at 10,000 agents the first
        runs are tens of thousands of new TLS connections, and without this they starve the
        status probes of agents already known, which then run late and are missed."""
        slot.due = now + DEFER_BY + self._rng.uniform(0, DEFER_BY)
        self.first_runs_by = max(self.first_runs_by, slot.due)
        self.deferred += 1
        self._push(key, slot, slot.due)

    def _jitter_for(self, interval: float) -> float:
        return self._rng.uniform(0, self._jitter * interval) if self._jitter else 0.0

    async def _run_one(self, key: str, slot: _Slot, due: float) -> None:
        loop = asyncio.get_running_loop()
        job = slot.job
        ok = False
        task = asyncio.current_task()
        assert task is not None
        cut_off = False

        def cut() -> None:
            # A plain timer, cheaper than asyncio.timeout() on every run: it cancels the run
            # and says so, so that our cancellation is told apart from the scheduler stopping.
            nonlocal cut_off
            cut_off = True
            task.cancel()

        try:
            start = loop.time()
            self.lag.add(max(0.0, start - due))
            self.runs += 1
            hedge = None
            if job.hedge_after is not None and not slot.failed:
                hedge = loop.call_at(start + job.hedge_after, self._hedge, key, slot)
            deadline = loop.call_at(start + job.timeout, cut)
            try:
                ok = bool(await job.run())
            except asyncio.CancelledError:
                if not cut_off:
                    raise
                task.uncancel()
                self.timeouts += 1
            except Exception as exc:
                # A prober must not raise for a target's fault: this is our bug. Keep going,
                # and log the type only (a message could carry agent data).
                log.error("probe job %s raised %s", key, type(exc).__name__)
            finally:
                deadline.cancel()
                if hedge is not None:
                    hedge.cancel()
        finally:
            self._release()  # taken by the dispatcher for this run
            slot.running = False
        if not ok:
            self.failures += 1
        slot.failed = not ok
        if self._confirming(job, slot, ok) and self._slots.get(key) is slot:
            assert job.fast_interval is not None
            fast_due = loop.time() + job.fast_interval
            if fast_due < slot.due:
                self._push(key, slot, fast_due)
                self._wake()

    @staticmethod
    def _confirming(job: Job, slot: _Slot, ok: bool) -> bool:
        """Whether this result calls for a fast re-probe (a change being confirmed)."""
        if ok:
            if slot.fails:
                slot.recovering = job.fast_recovery
            slot.fails = 0
            if not slot.recovering:
                return False
            slot.recovering -= 1
        else:
            slot.fails += 1
            slot.recovering = 0
            if job.fast_failures is not None and slot.fails > job.fast_failures:
                return False
        return job.fast_interval is not None

    def _hedge(self, key: str, slot: _Slot) -> None:
        if (
            not slot.running
            or self._hedging >= self._max_hedges
            or self._slots.get(key) is not slot
        ):
            return
        self._hedging += 1
        self.hedges += 1
        task = asyncio.create_task(self._run_hedge(key, slot.job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_hedge(self, key: str, job: Job) -> None:
        assert job.hedge is not None
        ok = False
        try:
            self.runs += 1
            async with asyncio.timeout(job.timeout):
                ok = bool(await job.hedge())
        except TimeoutError:
            self.timeouts += 1
        except Exception as exc:
            log.error("probe job %s hedge raised %s", key, type(exc).__name__)
        finally:
            self._hedging -= 1
        if not ok:
            self.failures += 1
