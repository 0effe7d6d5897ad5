"""A chaos run tells the monitor what it is doing, so its metrics, events and dashboard show it.

The run controller calls ``changed()`` at every phase change and after every inject and
revert; a task of our own PUTs the run's *current* report (``monitor.chaos_board`` is the
receiving side), one at a time, so a burst of changes becomes one report and the latest state
always wins. With nothing new it reports again every ``HEARTBEAT_S``: the monitor marks a run
that goes quiet for 30 s as lost. ``finish()`` sends the last report (phase done, verdict).

Reporting is best effort: a failed report never stops, slows or fails the run. Each report is
bounded in time; the first failure is said once and noted in the run record, and a later
success is said once.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any

from monitor.chaos_board import MAX_FAULTS
from monitor.client import MonitorClient, MonitorClientError

HEARTBEAT_S = 5.0
REPORT_TIMEOUT_S = 2.0

_NOT_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_NOT_ACTION = re.compile(r"[^a-z0-9_-]+")


def new_run_id(started: float) -> str:
    """Unique per run, sortable by start: ``20250102T030405Z-1a2b3c``."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started))
    return f"{stamp}-{secrets.token_hex(3)}"


def experiment_name(name: str) -> str:
    """An experiment's name as the monitor takes it: 1-64 of A-Z a-z 0-9 . _ -."""
    cleaned = _NOT_NAME.sub("-", name).strip("._-")[:64]
    return cleaned or "experiment"


def action_word(action: str) -> str:
    """A fault action as the monitor takes it: a lower-case word (a command driver's action
    may be anything)."""
    cleaned = _NOT_ACTION.sub("-", action.lower()).lstrip("0123456789_-")[:32]
    return cleaned or "fault"


def build_report(
    *,
    experiment: str,
    title: str,
    group: str,
    phase: str,
    started: float,
    faults: Iterable[tuple[str, str]],
    verdict: str | None = None,
) -> dict[str, Any]:
    """The report body for ``PUT /api/v1/chaos/runs/RUN``; ``faults``: (agent, action) held."""
    held = sorted({(agent, action_word(action)) for agent, action in faults})[:MAX_FAULTS]
    return {
        "experiment": experiment_name(experiment),
        "title": title,
        "group": group,
        "phase": phase,
        "started": started,
        "verdict": verdict if phase == "done" else None,
        "faults": [{"agent": agent, "action": action} for agent, action in held],
    }


class Announcer:
    """Reports one run to the monitor from its own task; ``report()`` builds the body now."""

    def __init__(
        self,
        client: MonitorClient,
        run_id: str,
        report: Callable[[], dict[str, Any]],
        *,
        say: Callable[[str], None],
        notes: list[str],
        heartbeat_s: float = HEARTBEAT_S,
        timeout_s: float = REPORT_TIMEOUT_S,
    ) -> None:
        self.client = client
        self.run_id = run_id
        self._report = report
        self._say = say
        self._notes = notes
        self._heartbeat_s = heartbeat_s
        self._timeout_s = timeout_s
        self._changed = asyncio.Event()
        self._sending = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self._noted = False
        self.sent = 0  # reports the monitor took

    def start(self) -> None:
        self._changed.set()  # the first report goes out at once
        self._task = asyncio.create_task(self._loop(), name=f"announce {self.run_id}")

    def changed(self) -> None:
        """Something the report shows changed: report soon (never waits)."""
        self._changed.set()

    async def finish(self) -> None:
        """Stop the heartbeat and send the final report (after one in flight, never beside it)."""
        if self._task is not None:
            async with self._sending:
                self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._send()

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._heartbeat_s):
                    await self._changed.wait()
            self._changed.clear()
            async with self._sending:
                await self._send()

    async def _send(self) -> None:
        try:
            async with asyncio.timeout(self._timeout_s):
                await self.client.report_chaos(self.run_id, self._report())
        except (MonitorClientError, TimeoutError) as exc:
            why = str(exc) or f"no answer within {self._timeout_s:g} s"
            if not self._failing:
                self._failing = True
                self._say(
                    f"monitor: cannot report run {self.run_id} ({why}); going on, retrying quietly"
                )
                if not self._noted:
                    self._noted = True
                    self._notes.append(f"reports to the monitor failed: {why}")
            return
        self.sent += 1
        if self._failing:
            self._failing = False
            self._say("monitor: reports to the monitor resumed")
