"""The operators' terminal dashboard, fed only by the monitor's public API."""

from tui.app import DashboardApp, run_dashboard
from tui.feed import Feed, FeedSink, HttpFeed

__all__ = ["DashboardApp", "Feed", "FeedSink", "HttpFeed", "run_dashboard"]
