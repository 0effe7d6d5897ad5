"""The dashboard with Pilot, on a real monitor watching the simulated demo fleet.

Planted in the demo fleet: test/orders/orders-2's certificate expires in 10 days,
test/invoices/invoices-2 serves plain HTTP, prod/orders/orders-3 is paused.
"""

from __future__ import annotations

import contextlib
import time

import pytest
from aio_helpers import until
from tui_support import live_monitor, screen_text

from monitor.client import MonitorClient
from tui.app import DashboardApp
from tui.feed import HttpFeed
from tui.screens import DetailScreen, HelpScreen

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]

AGENTS = 8


def dashboard(url: str) -> DashboardApp:
    return DashboardApp(HttpFeed(url, poll_interval=0.5, timeout=1.0))


def shown(app: DashboardApp) -> list[str]:
    return [row.id for row in app.agent_table.rows]


def settled(app: DashboardApp) -> bool:
    """Every group judged and the planted findings seen."""
    model = app.model
    return (
        len(model.agents) == AGENTS
        and all(g.status != "unknown" for g in model.groups.values())
        and model.agents["test/orders/orders-2"].state == "degraded"
        and model.agents["test/invoices/invoices-2"].state == "degraded"
    )


async def test_navigate_tree_table_details_and_help(fleet) -> None:
    with live_monitor(fleet) as url:
        app = dashboard(url)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(lambda: settled(app), what="the fleet settled")
            await until(lambda: len(shown(app)) == AGENTS, what="the table drawn")
            text = screen_text(app)
            assert "monitors 1/1" in text
            assert "✔ test" in text and "▲ prod" in text  # prod/orders has no spare agent
            assert "orders ±0" in text and "invoices +1" in text

            # Tree: the root is the fleet; down goes to test, test/orders, test/invoices, prod.
            await pilot.press("shift+tab")
            assert app.focused is app.fleet_tree
            await pilot.press("down", "down")
            assert app.query_state.scope == "test/orders"
            assert shown(app) == ["test/orders/orders-2", "test/orders/orders-1"]
            await pilot.press("down", "down", "down")
            assert app.query_state.scope == "prod/orders"
            assert len(shown(app)) == 4
            # Opening a group lists its agents; selecting one shows its details.
            await pilot.press("space", "down", "enter")
            await pilot.pause(0.1)
            assert isinstance(app.screen, DetailScreen)
            assert app.screen.agent_id == "prod/orders/orders-1"
            await pilot.press("escape")

            # The table's cursor followed the tree; the paused agent sorts before the up ones.
            await pilot.press("tab")
            assert app.focused is app.agent_table
            assert app.agent_table.current_id == "prod/orders/orders-1"
            await pilot.press("home")
            assert app.agent_table.current_id == "prod/orders/orders-3"
            await pilot.press("enter")
            await pilot.pause(0.2)
            assert isinstance(app.screen, DetailScreen)
            detail = screen_text(app)
            assert "‖ paused" in detail and "prod/orders/orders-3" in detail
            assert "last result of every probe" in detail and "status" in detail
            await pilot.press("escape")
            assert not isinstance(app.screen, DetailScreen)

            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            assert "state filter" in screen_text(app)
            await pilot.press("escape")
            assert not isinstance(app.screen, HelpScreen)


async def test_filter_search_and_sort(fleet) -> None:
    with live_monitor(fleet) as url:
        app = dashboard(url)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(lambda: settled(app), what="the fleet settled")
            await until(lambda: len(shown(app)) == AGENTS, what="the table drawn")
            await pilot.press("f")  # problems: everything not up
            assert app.query_state.state == "problems"
            assert sorted(shown(app)) == [
                "prod/orders/orders-3",
                "test/invoices/invoices-2",
                "test/orders/orders-2",
            ]
            await pilot.press("slash", *"invoices")
            assert app.focused is app.search_box
            assert shown(app) == ["test/invoices/invoices-2"]
            await pilot.press("escape", "f")  # back to the table; next filter: down
            assert app.query_state.state == "down"
            assert shown(app) == []
            assert "0/8 agents" in screen_text(app)

            await pilot.press("a")  # everything again, search cleared
            assert len(shown(app)) == AGENTS and app.search_box.value == ""
            await pilot.press("slash", *"cert_exp", "enter")  # findings are searched too
            assert shown(app) == ["test/orders/orders-2"]
            await pilot.press("a", "s")  # sort by agent id
            assert app.query_state.sort == "agent"
            assert shown(app) == sorted(shown(app))
            await pilot.press("S")
            assert shown(app) == sorted(shown(app), reverse=True)


async def test_state_change_from_the_fleet_shows_within_a_second(fleet) -> None:
    agent = "test/orders/orders-1"
    with live_monitor(fleet) as url:
        app = dashboard(url)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(lambda: settled(app), what="the fleet settled")
            await pilot.press("slash", *"test/orders/", "enter")

            def row_says(state: str) -> bool:
                return any(agent in line and state in line for line in screen_text(app).split("\n"))

            assert row_says("✔ up")
            started = time.monotonic()
            fleet.set(agent, paused=True)
            took = await until(lambda: row_says("‖ paused"), within=5, what="paused on screen")
            took = time.monotonic() - started
            assert took < 1.0, f"the pause took {took:.2f} s to reach the screen"
            logged = [e for e in app.model.events if e.get("id") == agent]
            assert logged[-1]["new"] == "paused"  # and in the event log
            fleet.set(agent, paused=False)
            await until(lambda: row_says("✔ up"), within=5, what="up again on screen")


async def test_lost_connection_banner_and_recovery(fleet) -> None:
    with contextlib.ExitStack() as first:
        url = first.enter_context(live_monitor(fleet))
        app = dashboard(url)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(lambda: settled(app), what="the fleet settled")
            assert not app.lost_banner.display

            first.close()  # the monitor stops
            await until(lambda: app.lost_banner.display, within=5, what="the banner")
            await pilot.pause(0.2)
            text = screen_text(app)
            assert "monitor connection lost" in text and "reconnecting" in text
            assert "monitors 0/1" in text
            assert len(shown(app)) == AGENTS  # the last data stays on screen

            port = int(url.rsplit(":", 1)[1])
            with live_monitor(fleet, port):  # and comes back on the same port
                await until(lambda: not app.lost_banner.display, within=10, what="recovery")
                await until(lambda: settled(app), what="the fleet settled again")
                await pilot.pause(0.2)
                assert "monitors 1/1" in screen_text(app)
                notes = [e["reason"] for e in app.model.events if e["kind"] == "note"]
                assert notes[-2:] == [notes[-2], "reconnected to the monitor"]
                assert notes[-2].startswith("monitor connection lost")


async def test_chaos_run_banner_and_fault_mark_come_and_go(fleet) -> None:
    agent = "test/orders/orders-1"
    report = {
        "experiment": "stop-one-agent", "title": "one agent stops", "group": "test/orders",
        "phase": "fault", "started": time.time(), "verdict": None,
        "faults": [{"agent": agent, "action": "stop"}],
    }  # fmt: skip
    with live_monitor(fleet) as url:
        app = dashboard(url)
        async with app.run_test(size=(80, 24)) as pilot, MonitorClient(url) as client:
            await until(lambda: settled(app), what="the fleet settled")
            assert not app.chaos_banner.display

            def marked() -> bool:
                text = screen_text(app)
                row = [line for line in text.split("\n") if "orders/orders-1" in line]
                return "↯ chaos stop-one-agent on test/orders" in text and any(
                    "↯stop" in line for line in row
                )

            started = time.monotonic()
            await client.report_chaos("tui-live-1", report)
            await until(marked, within=5, what="the chaos banner and the fault mark")
            took = time.monotonic() - started
            assert took < 2.0, f"the chaos run took {took:.2f} s to reach the screen"
            assert "on test/orders  ↯ fault  1 fault: orders-1 ↯stop" in screen_text(app)
            assert app.model.agents[agent].faults == ("stop",)

            await pilot.press("c")  # the table on the run's group
            assert app.query_state.scope == "test/orders"
            await pilot.press("slash", *"stop", "enter")  # faults are searched too
            assert shown(app) == [agent]
            await pilot.press("enter")  # the details show the fault
            await until(lambda: isinstance(app.screen, DetailScreen), what="the details")
            await pilot.pause(0.2)
            detail = screen_text(app)
            assert "chaos fault" in detail and "↯stop by chaos run tui-live-1" in detail
            await pilot.press("escape")

            await client.report_chaos(
                "tui-live-1", {**report, "phase": "done", "verdict": "pass", "faults": []}
            )
            await until(
                lambda: not app.chaos_banner.display and not marked(),
                within=2,
                what="the banner and the mark gone",
            )
            assert app.model.agents[agent].faults == ()
            logged = [
                (e["kind"], e["new"]) for e in app.model.events if e["kind"] in ("chaos", "fault")
            ]
            assert logged == [
                ("chaos", "fault"),
                ("fault", "stop"),
                ("fault", "none"),
                ("chaos", "done"),
            ]
