"""Keeping the monitor's long-lived objects out of garbage collection.

At 10,000 agents the heap holds millions of objects that live as long as the monitor does:
connections with their transports and protocols, targets, states, label sets. A full
collection walks them all and stops the event loop for up to a second, the tail of the
schedule lag (bench/README.md). Once every job has had its first run those objects exist; they
are frozen (``gc.freeze``), and later collections walk only what came after. Freezing takes
no time; a full collection first would itself stop the loop for that second, so only the
young generations are collected: what is frozen while already garbage in a cycle stays, once.
After a reload that adds jobs it is done again.

Only for a monitor process (``serve``): frozen objects are never freed, so a process that
starts monitors and drops them (a test run) must not freeze.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

from monitor.scheduler import Scheduler

log = logging.getLogger(__name__)

SETTLE_S = 15.0  # after the last first run is due: time for it (and its timeout) to end


async def freeze_when_warm(scheduler: Scheduler, settle: float = SETTLE_S) -> None:
    loop = asyncio.get_running_loop()
    frozen_for: float | None = None
    while True:
        due = scheduler.first_runs_by + settle
        if due != frozen_for and loop.time() >= due:
            started = time.perf_counter()
            gc.collect(1)
            gc.freeze()
            frozen_for = due
            log.info(
                "%d long-lived objects kept out of garbage collection (took %.2f s)",
                gc.get_freeze_count(),
                time.perf_counter() - started,
            )
        wait = due - loop.time() if due != frozen_for else settle
        await asyncio.sleep(max(wait, 1.0))
