"""The monitor freezes its long-lived objects once the first runs are done, and again after
a reload adds jobs (in a child process: a frozen heap must not leak into the test run)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.timeout(30)

SCRIPT = textwrap.dedent(
    """
    import asyncio, gc
    from monitor.heap import freeze_when_warm
    from monitor.scheduler import Job, Scheduler

    async def nothing():
        return True

    async def main():
        loop = asyncio.get_running_loop()
        scheduler = Scheduler(first_run_spread=0.2)
        scheduler.set_jobs([Job("a", nothing, 1.0, 0.5)])
        keeper = asyncio.create_task(freeze_when_warm(scheduler, settle=0.1))
        assert gc.get_freeze_count() == 0
        await asyncio.sleep(1.5)
        first = gc.get_freeze_count()
        print("frozen after first runs", first > 0)
        kept = [[] for _ in range(6000)]  # long-lived (and tracked), made after the freeze
        scheduler.set_jobs([Job("a", nothing, 1.0, 0.5), Job("b", nothing, 1.0, 0.5)])
        await asyncio.sleep(0)
        print("not before the new first runs", gc.get_freeze_count() < first + 5000)
        await asyncio.sleep(2.5)
        print("again after a reload", gc.get_freeze_count() >= first + 5000)
        keeper.cancel()
        del kept

    asyncio.run(main())
    """
)


def test_long_lived_objects_are_frozen_when_warm_and_again_after_new_jobs() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=20, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:3] == [
        "frozen after first runs True",
        "not before the new first runs True",
        "again after a reload True",
    ]
