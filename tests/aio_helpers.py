"""Waiting in async tests: for a condition, and for a task run in the background."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any


async def until(
    check: Callable[[], object],
    within: float = 10.0,
    what: str | Callable[[], str] = "condition",
) -> float:
    """Wait for ``check``; returns the seconds it took. ``what`` (or what it returns at the
    deadline) names the condition in the failure."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > within:
            described = what() if callable(what) else what
            raise AssertionError(f"{described} not reached within {within} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


@contextlib.asynccontextmanager
async def background(coroutine: Coroutine[Any, Any, Any]) -> AsyncIterator[asyncio.Task[Any]]:
    """Run ``coroutine`` as a task while the block runs; cancel it and wait for it after."""
    task = asyncio.create_task(coroutine)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
