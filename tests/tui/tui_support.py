"""For the dashboard tests: a real monitor on the demo fleet, a recorded one, the screen as text.

The live tests run ``agentha monitor`` with short intervals on the session's simulated fleet.
The snapshot tests need data that never changes: a recorded monitor serves snapshots and
events captured from a real monitor on the demo fleet (with test/invoices/invoices-1
stopped), through the same HTTP API. ``chaos_recording`` adds the chaos run that stopped it,
as the monitor's own chaos board reports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aiohttp import web
from rich.console import Console
from textual.app import App

from monitor.chaos_board import ChaosBoard
from monitor.events import EventLog

RECORDING = Path(__file__).parent / "data" / "demo_fleet.json"
CHAOS_RUN = "stop-one-agent-20261208"
CHAOS_AGENT = "test/invoices/invoices-1"


def screen_text(app: App) -> str:
    """What the terminal shows now, as plain text."""
    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        force_terminal=True,
        record=True,
        legacy_windows=False,
        safe_box=False,
    )
    console.print(
        app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    )
    return console.export_text()


MONITOR_ARGS = (
    "--status-interval",
    "0.3",
    "--status-timeout",
    "1",
    "--fast-interval",
    "0.1",
    "--tls-interval",
    "1",
    "--plaintext-interval",
    "1",
    "--log-level",
    "error",
)


@contextlib.contextmanager
def live_monitor(fleet: Any, port: int = 0) -> Iterator[str]:
    """``agentha monitor`` on the fleet's inventory; yields its URL once it serves.

    A process of its own: Pilot waits for the test process to go idle after every key, and a
    monitor probing in the same process would keep it busy.
    """
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agentha",
            "monitor",
            "-c",
            str(fleet.directory / "inventory.yaml"),
            "--listen",
            f"127.0.0.1:{port}",
            *MONITOR_ARGS,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **fleet.secrets},
    )
    try:
        yield _serving(proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def _serving(proc: subprocess.Popen[bytes]) -> str:
    assert proc.stderr is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stderr.readline().decode(errors="replace")
        if "serving " in line:
            return line.rsplit("serving ", 1)[1].strip()
        if not line and proc.poll() is not None:
            break
    raise RuntimeError(f"agentha monitor did not start (exit {proc.poll()})")


class RecordedMonitor:
    """The monitor's API on a fixed recording, in a thread of its own (for snap_compare).

    The n-th snapshot request gets the n-th recorded snapshot, then the last one again. The
    snapshots say no event has happened yet, so the dashboard asks for the stream from the
    start and gets every recorded event, then only pings.
    """

    def __init__(self, recording: Path | dict[str, Any] = RECORDING) -> None:
        data = recording if isinstance(recording, dict) else json.loads(recording.read_text())
        self.snapshots: list[dict[str, Any]] = data["snapshots"]
        self.events: list[dict[str, Any]] = data["events"]
        self.served = 0
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._streams: set[asyncio.Task[Any]] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def time(self) -> float:
        """The monitor's clock at the last snapshot: the snapshot tests' fixed now."""
        return float(self.snapshots[-1]["time"])

    @property
    def all_served(self) -> bool:
        return self.served >= len(self.snapshots)

    def __enter__(self) -> RecordedMonitor:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *_exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", _healthz)
        app.router.add_get("/api/v1/snapshot", self._snapshot)
        app.router.add_get("/api/v1/events", self._events)
        app.on_shutdown.append(self._close_streams)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def _snapshot(self, _request: web.Request) -> web.Response:
        snapshot = {**self.snapshots[min(self.served, len(self.snapshots) - 1)], "last_event": 0}
        self.served += 1
        return web.json_response(snapshot)

    async def _events(self, request: web.Request) -> web.StreamResponse:
        after = int(request.headers.get("Last-Event-ID") or request.query.get("after") or 0)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        task = asyncio.current_task()
        if task is not None:
            self._streams.add(task)
        for event in self.events:
            if event["seq"] > after:
                data = json.dumps(event)
                await response.write(f"id: {event['seq']}\ndata: {data}\n\n".encode())
        with contextlib.suppress(ConnectionResetError, asyncio.CancelledError):
            while True:
                await asyncio.sleep(5)
                await response.write(b": ping\n\n")
        return response

    async def _close_streams(self, _app: web.Application) -> None:
        for task in self._streams:
            task.cancel()


def chaos_recording(recording: Path = RECORDING) -> dict[str, Any]:
    """The recording with a chaos run holding a stop on the agent that went down.

    A real ``ChaosBoard`` takes the run's reports on the recording's clock: preflight and
    baseline before the agent goes down, the fault a moment before, and a report at every
    snapshot; its events join the recorded ones in time order and every snapshot carries the
    board as it was then.
    """
    data = json.loads(recording.read_text())
    down = next(e for e in data["events"] if e["id"] == CHAOS_AGENT and e["new"] == "down")
    now = [down["time"] - 5.0]
    log = EventLog(clock=lambda: now[0])
    board = ChaosBoard(log, lambda: {CHAOS_AGENT}, clock=lambda: now[0])
    report = {"experiment": "stop-one-agent", "title": "one invoices agent stops",
              "group": CHAOS_AGENT.rpartition("/")[0], "phase": "preflight",
              "started": now[0], "verdict": None, "faults": []}  # fmt: skip
    fault = [{"agent": CHAOS_AGENT, "action": "stop"}]
    for phase, before in (("preflight", 5.0), ("baseline", 3.0), ("fault", 0.3)):
        now[0] = down["time"] - before
        board.report(CHAOS_RUN, {**report, "phase": phase,
                                 "faults": fault if phase == "fault" else []})  # fmt: skip
    for snapshot in data["snapshots"]:
        now[0] = snapshot["time"]
        board.report(CHAOS_RUN, {**report, "phase": "fault", "faults": fault})
        snapshot["chaos"] = board.snapshot()
    events = sorted(data["events"] + [e.to_dict() for e in log.since(0)], key=lambda e: e["time"])
    data["events"] = [{**event, "seq": seq} for seq, event in enumerate(events, 1)]
    return data


async def _healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})
