"""Snapshot tests of the dashboard's screens at 80x24 and 120x40, on recorded monitor data.

The recording (data/demo_fleet.json) is the demo fleet seen by a real monitor: one agent
stopped, one paused, an expiring certificate and an open plain-HTTP port; a second serving of
it adds the chaos run that stopped that agent (``chaos_recording``). The clock is fixed
at the recording's time and the time zone is UTC, so every run draws the same screen.
Update after a deliberate change with ``pytest tests/tui --snapshot-update``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from aio_helpers import until
from tui_support import RecordedMonitor, chaos_recording

from tui.app import DashboardApp
from tui.feed import HttpFeed

pytestmark = pytest.mark.timeout(60)

SIZES = [(80, 24), (120, 40)]


@pytest.fixture(scope="module")
def recorded() -> Iterator[RecordedMonitor]:
    with RecordedMonitor() as monitor:
        yield monitor


@pytest.fixture(scope="module")
def recorded_chaos() -> Iterator[RecordedMonitor]:
    with RecordedMonitor(chaos_recording()) as monitor:
        yield monitor


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def dashboard(recorded: RecordedMonitor) -> DashboardApp:
    recorded.served = 0
    feed = HttpFeed(recorded.url, poll_interval=0.1)
    return DashboardApp(feed, clock=lambda: recorded.time)


def loaded(app: DashboardApp, recorded: RecordedMonitor):
    async def wait(pilot) -> None:
        await until(lambda: recorded.all_served and len(app.model.events) > 10, what="data")
        await until(lambda: len(app.agent_table.rows) == 8, what="the table drawn")
        await until(lambda: app.model.events_added == app.event_log._shown, what="the log")
        await pilot.pause(0.6)  # the last coalesced redraw

    return wait


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_main_screen(snap_compare, recorded: RecordedMonitor, size) -> None:
    app = dashboard(recorded)
    assert snap_compare(app, terminal_size=size, run_before=loaded(app, recorded))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_main_screen_chaos_run(snap_compare, recorded_chaos: RecordedMonitor, size) -> None:
    app = dashboard(recorded_chaos)
    assert snap_compare(app, terminal_size=size, run_before=loaded(app, recorded_chaos))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_agent_detail(snap_compare, recorded: RecordedMonitor, size) -> None:
    app = dashboard(recorded)
    wait = loaded(app, recorded)

    async def open_detail(pilot) -> None:
        await wait(pilot)
        await pilot.press("enter")  # the first row: the stopped agent
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=size, run_before=open_detail)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_help(snap_compare, recorded: RecordedMonitor, size) -> None:
    app = dashboard(recorded)
    wait = loaded(app, recorded)

    async def open_help(pilot) -> None:
        await wait(pilot)
        await pilot.press("question_mark")
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=size, run_before=open_help)
