"""Locust plugin: write the per-second timeline (``loadtests.timeline``) to ``--timeline FILE``.

Import it from a locustfile. Every process records each request under the second it
completed and its name. A standalone Locust writes the file itself; in distributed mode
(``--processes N``, or ``--master`` with ``--worker`` processes) each worker sends what it
recorded with its stats report (``report_to_master``) and the master merges the reports
(``worker_report``) and writes the one timeline. Seconds are written once they are closed:
at once in a standalone process, after two report intervals on a master (a report that is
later still becomes a ``late`` line); the rest is written when Locust quits, after the
workers' final reports, so the file's totals equal Locust's own.

``--totals FILE`` writes Locust's own final request and failure counts per name, as JSON, when
it quits: its stats CSV is rewritten once a second and not at the end, so it can miss the
requests of the last second.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import IO, Any

import gevent
from locust import events
from locust.env import Environment
from locust.runners import WORKER_REPORT_INTERVAL, MasterRunner, WorkerRunner

from loadtests.timeline import TimelineRecorder, TimelineWriter

REPORT_KEY = "agentha_timeline"
# How long a master waits before writing a second: two worker reports, plus one second.
MASTER_LAG_S = math.ceil(2 * WORKER_REPORT_INTERVAL) + 1

_recorder = TimelineRecorder()


def _record(name: str, response_time: float | None, exception: Any = None, **_kwargs: Any) -> None:
    _recorder.record(int(time.time()), name, exception is None, response_time or 0.0)


def _send(data: dict[str, Any], **_kwargs: Any) -> None:
    data[REPORT_KEY] = _recorder.drain()


def _receive(data: dict[str, Any], **_kwargs: Any) -> None:
    _recorder.merge(data.get(REPORT_KEY, ()))


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument(
        "--timeline",
        default="",
        metavar="FILE",
        help="write one JSON line per second: successes, failures and latency per endpoint",
    )
    parser.add_argument(
        "--totals",
        default="",
        metavar="FILE",
        help="when Locust quits, write its final request and failure counts per name as JSON",
    )


def write_totals(environment: Environment, path: Path) -> None:
    """Locust's own final counts: ``{name: {"requests": N, "failures": N}}`` and "Aggregated"."""
    counts: dict[str, dict[str, int]] = {}
    for entry in environment.stats.entries.values():
        named = counts.setdefault(entry.name, {"requests": 0, "failures": 0})
        named["requests"] += entry.num_requests
        named["failures"] += entry.num_failures
    total = environment.stats.total
    counts["Aggregated"] = {"requests": total.num_requests, "failures": total.num_failures}
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    part.write_text(json.dumps(counts, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(part, path)


class _TimelineFile:
    """The writing side, on a standalone Locust or a master."""

    def __init__(self, environment: Environment, path: Path) -> None:
        self.environment = environment
        self.path = path
        self.lag = MASTER_LAG_S if isinstance(environment.runner, MasterRunner) else 1
        self.users: dict[int, int] = {}
        self.out: IO[str] | None = None
        self.writer: TimelineWriter | None = None
        self.loop: gevent.Greenlet | None = None

    def start(self, **_kwargs: Any) -> None:
        self.close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.out = self.path.open("w", encoding="utf-8")
        self.writer = TimelineWriter(self.out, int(time.time()))
        self.loop = gevent.spawn(self._tick)

    def _tick(self) -> None:
        while True:
            now = int(time.time())
            runner = self.environment.runner
            self.users[now] = max(self.users.get(now, 0), runner.user_count if runner else 0)
            if self.writer is not None:
                self.writer.write_until(_recorder, now + 1 - self.lag, self.users)
            gevent.sleep(1.0 - time.time() % 1.0 + 0.01)

    def finish(self, **_kwargs: Any) -> None:
        if self.loop is not None:
            self.loop.kill(block=True)
            self.loop = None
        if self.writer is not None:
            self.writer.finish(_recorder, self.users)
        self.close()

    def close(self) -> None:
        if self.out is not None:
            self.out.close()
        self.out = self.writer = None


@events.init.add_listener
def _on_init(environment: Environment, **_kwargs: Any) -> None:
    environment.events.request.add_listener(_record)
    if isinstance(environment.runner, WorkerRunner):
        environment.events.report_to_master.add_listener(_send)
        return
    if isinstance(environment.runner, MasterRunner):
        environment.events.worker_report.add_listener(_receive)
    options = environment.parsed_options
    totals = getattr(options, "totals", "") if options is not None else ""
    if totals:
        # `quit` comes after the runner has quit: the counts are final, the workers' included.
        environment.events.quit.add_listener(
            lambda **_kwargs: write_totals(environment, Path(totals))
        )
    path = getattr(options, "timeline", "") if options is not None else ""
    if path:
        timeline = _TimelineFile(environment, Path(path))
        environment.events.test_start.add_listener(timeline.start)
        # `quit` comes after the runner has quit, so the workers' final reports are in.
        environment.events.quit.add_listener(timeline.finish)
