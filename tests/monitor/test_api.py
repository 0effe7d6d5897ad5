"""The HTTP API and its client, over a real loopback listener."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import gzip

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
)

from monitor.api import WRITE_CHUNK, _render, create_app, render_metrics
from monitor.client import MonitorClient, MonitorClientError
from monitor.collector import PAUSE, MonitorCollector, cooperative
from monitor.ledger import ProbeLedger
from monitor.probes import ProbeResult, Reason, StatusDetails, TlsDetails
from monitor.scheduler import Scheduler
from monitor.state import GroupSpec, Liveness, StateStore

pytestmark = pytest.mark.timeout(20)
A1, A2 = "test/orders/a1", "test/orders/a2"


@contextlib.asynccontextmanager
async def serve(store: StateStore, token: str | None = None, *extra):
    registry = CollectorRegistry()
    registry.register(MonitorCollector(store, None, version="test"))
    for collector in extra:
        registry.register(collector)
    runner = web.AppRunner(create_app(store, registry, token=token, ping_interval=0.2))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def make_store() -> StateStore:
    return StateStore({"test/orders": GroupSpec(1, (A1, A2))}, rise=1, fall=1)


@pytest.mark.asyncio
async def test_snapshot_health_and_metrics() -> None:
    store = make_store()
    store.observe_status(A1, Liveness.UP, "ok")
    async with serve(store) as url, MonitorClient(url) as client:
        assert await client.healthy()
        snap = await client.snapshot()
        assert snap["agents"][A1]["state"] == "up"
        assert snap["groups"]["test/orders"]["total"] == 2
        async with client.session.get(f"{url}/metrics") as response:
            text = await response.text()
        assert 'agentha_agent_up{agent="a1",environment="test",group="orders"} 1.0' in text


class FailsOnce:
    """A collector that meets a change the first time it is read while cooperative."""

    def __init__(self) -> None:
        self.reads: list[bool] = []

    def collect(self):
        self.reads.append(cooperative.get())
        if len(self.reads) == 1:
            raise RuntimeError("dictionary changed size during iteration")
        yield GaugeMetricFamily("recorder_value", "A test gauge.", value=7)


def big_store(agents: int) -> StateStore:
    groups = {
        f"prod/g{g}": GroupSpec(1, tuple(f"prod/g{g}/a{i}" for i in range(4)))
        for g in range(agents // 4)
    }
    store = StateStore(groups, rise=1, fall=1)
    for spec in groups.values():
        for agent in spec.agents:
            store.observe_status(agent, Liveness.UP, "ok")
    return store


class Ticks:
    """A collector that notes how often a ticker task has run when it is read."""

    def __init__(self, seen: list[int], ticks: list[int]) -> None:
        self.seen, self.ticks = seen, ticks

    def collect(self):
        self.seen.append(self.ticks[0])
        return iter(())


@pytest.mark.asyncio
async def test_a_big_scrape_lets_the_loop_run_between_slices() -> None:
    store = big_store(4000)
    ticks = [0]
    seen: list[int] = []

    async def ticker() -> None:
        while True:
            ticks[0] += 1
            await asyncio.sleep(0)

    registry = CollectorRegistry()
    registry.register(Ticks(seen, ticks))  # read just before the store's collector...
    registry.register(MonitorCollector(store, None, version="test"))
    registry.register(Ticks(seen, ticks))  # ...and just after it
    runner = web.AppRunner(create_app(store, registry))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    task = asyncio.create_task(ticker())
    try:
        async with MonitorClient(url) as client, client.session.get(f"{url}/metrics") as response:
            text = await response.text()
    finally:
        task.cancel()
        await runner.cleanup()
    assert text.count("agentha_agent_up{") == 4000
    # 4,000 agents and 1,000 groups: 8 + 2 pauses while collecting, the ticker ran at each.
    # Collected in one go, it would not have run at all in between.
    assert seen[1] - seen[0] >= 10


@pytest.mark.asyncio
@pytest.mark.parametrize("encoding", ["identity", "gzip"])
async def test_a_big_body_goes_out_in_pieces_with_the_same_bytes(encoding: str) -> None:
    store = big_store(4000)  # about 1 MB of text: four pieces
    registry = CollectorRegistry()
    registry.register(MonitorCollector(store, None, version="test"))
    expected = render_metrics(list(registry.collect()))
    async with serve(store) as url, aiohttp.ClientSession(auto_decompress=False) as session:
        headers = {"Accept-Encoding": encoding}
        async with session.get(f"{url}/metrics", headers=headers) as response:
            raw = await response.read()
            assert response.headers.get("Transfer-Encoding") == "chunked"
            assert response.headers.get("Content-Encoding", "identity") == encoding
    body = gzip.decompress(raw) if encoding == "gzip" else raw
    assert len(expected) > 3 * WRITE_CHUNK
    assert body == expected


@pytest.mark.asyncio
async def test_a_collection_that_meets_a_change_is_done_again_in_one_go() -> None:
    failing = FailsOnce()
    store = make_store()
    store.observe_status(A1, Liveness.UP, "ok")
    async with (
        serve(store, None, failing) as url,
        MonitorClient(url) as client,
        client.session.get(f"{url}/metrics") as response,
    ):
        status, text = response.status, await response.text()
    assert status == 200 and "recorder_value 7.0" in text
    assert 'agentha_agent_up{agent="a1",environment="test",group="orders"} 1.0' in text
    assert failing.reads == [True, False]  # the second read without pauses


@pytest.mark.asyncio
async def test_event_stream_delivers_new_events_and_replays_after_an_id() -> None:
    store = make_store()
    async with serve(store) as url, MonitorClient(url) as client:
        stream = client.events()
        first = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.3)  # connected, and a ping went by
        store.observe_status(A1, Liveness.UP, "ok")
        event = await asyncio.wait_for(first, 5)
        assert (event["id"], event["old"], event["new"]) == (A1, "unknown", "up")
        await stream.aclose()

        store.observe_status(A2, Liveness.DOWN, "refused")  # also moves the group
        replay = client.events(after=event["seq"])
        got = [await asyncio.wait_for(anext(replay), 5) for _ in range(2)]
        await replay.aclose()
        assert [(e["id"], e["new"]) for e in got] == [(A2, "down"), ("test/orders", "at_risk")]
        assert got[0]["reason"] == "refused"


@pytest.mark.asyncio
async def test_a_bad_last_event_id_is_a_400() -> None:
    async with serve(make_store()) as url, aiohttp.ClientSession() as session:
        headers = {"Last-Event-ID": "not-a-number"}
        async with session.get(f"{url}/api/v1/events", headers=headers) as response:
            assert response.status == 400


@pytest.mark.asyncio
async def test_token_protects_everything_but_healthz() -> None:
    token = "Api-T0ken-for-tests!"
    async with serve(make_store(), token=token) as url:
        async with MonitorClient(url) as anonymous:
            with pytest.raises(MonitorClientError, match="HTTP 401"):
                await anonymous.snapshot()
            assert await anonymous.healthy()
        async with MonitorClient(url, token=token) as client:
            assert "agents" in await client.snapshot()


@pytest.mark.asyncio
async def test_unreachable_monitor_is_a_clear_error() -> None:
    async with MonitorClient("http://127.0.0.1:9", timeout=2) as client:
        with pytest.raises(MonitorClientError, match=r"127\.0\.0\.1:9"):
            await client.snapshot()
        assert not await client.healthy()


class OddSeries:
    """Series that exercise every branch of the text format: escaping, _created, timestamps."""

    def __init__(self, odd_name: bool) -> None:
        self.odd_name = odd_name

    def collect(self):
        gauge = GaugeMetricFamily(
            "odd_value", 'Help with \\ and "quotes"\nover two lines.', labels=["v"]
        )
        gauge.add_metric(['back\\slash "quoted"\nnewline'], 1e-7)
        gauge.add_metric(["plain"], float("inf"), timestamp=1700000000.5)
        gauge.add_metric(["nan"], float("nan"))
        gauge.add_metric(["big"], 123456789.0)
        yield gauge
        counter = CounterMetricFamily("odd_events", "Counted.", labels=["b", "a"], created=1.5)
        counter.add_metric(["2", "1"], 3, created=1700000000.0)
        yield counter
        info = InfoMetricFamily("odd_build", "Build.")
        info.add_metric([], {"version": "1.0"})
        yield info
        histogram = HistogramMetricFamily(
            "odd_seconds", "Hist.", buckets=[("0.1", 1), ("+Inf", 2)], sum_value=0.3
        )
        yield histogram
        if self.odd_name:
            yield GaugeMetricFamily("odd.dotted", "Not a legacy name.", value=1)


@pytest.mark.parametrize("odd_name", [False, True])
def test_metrics_text_is_what_generate_latest_writes(odd_name: bool) -> None:
    store = StateStore(
        {"test/orders": GroupSpec(1, (A1, A2)), "prod/x": GroupSpec(2, ("prod/x/y",))},
        rise=1,
        fall=1,
    )
    store.observe_status(A1, Liveness.UP, "ok")
    store.observe_status(A2, Liveness.DOWN, "refused")
    store.set_findings(A1, "tls", ["cert_expiring"])
    store.observe_entrypoint("test/orders", "list", True, "ok")
    ledger = ProbeLedger()
    ledger.record(
        ProbeResult("status", A1, Reason.OK, 1.0, 0.01, 200, StatusDetails(True, 10, True, 3, 9))
    )
    ledger.record(ProbeResult("status", A2, Reason.REFUSED, 1.0, 0.002))
    ledger.record(
        ProbeResult("tls", A1, Reason.OK, 1.0, 0.2, details=TlsDetails("TLSv1.3", not_after=2e9))
    )
    registry = CollectorRegistry()
    registry.register(MonitorCollector(store, Scheduler(), version="t", ledger=ledger))
    registry.register(OddSeries(odd_name))
    families = list(registry.collect())
    assert render_metrics(families) == generate_latest(registry)
    if not odd_name:  # the fast path itself, not the fallback, wrote it
        assert "".join(p for p in _render(families) if p is not PAUSE).encode() == generate_latest(
            registry
        )


class GcWatch:
    """Notes whether garbage collection is on while it is collected."""

    def __init__(self) -> None:
        self.enabled: list[bool] = []

    def collect(self):
        self.enabled.append(gc.isenabled())
        return iter(())


@pytest.mark.asyncio
async def test_no_garbage_collection_during_a_scrape() -> None:
    watch = GcWatch()
    assert gc.isenabled()
    async with (
        serve(make_store(), None, watch) as url,
        MonitorClient(url) as client,
        client.session.get(f"{url}/metrics") as response,
    ):
        assert response.status == 200
    assert watch.enabled == [False]
    assert gc.isenabled()  # on again afterwards
