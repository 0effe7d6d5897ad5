"""Running the monitor as a service: probes, the HTTP API and /metrics on one listener.

``serve()`` is what ``agentha monitor`` and ``agentha demo`` run. SIGTERM and SIGINT stop it
gracefully; SIGHUP reloads the inventory (a bad new file is reported and the running one kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily

from monitor.api import create_app
from monitor.audit.exporters import AuditCollector
from monitor.chaos_board import ChaosBoard
from monitor.collector import ChaosCollector, MonitorCollector, MqttCollector
from monitor.consensus import consensus
from monitor.errors import InventoryError
from monitor.heap import freeze_when_warm
from monitor.inventory import Inventory, load_inventory
from monitor.logs import QuietProduction, RedactSecrets
from monitor.mqtt import MqttSettings, Publisher
from monitor.service import Monitor, MonitorSettings
from monitor.shard import Shard, shard_inventory

log = logging.getLogger(__name__)

VERSION = "0.1.0"


@dataclass(frozen=True, slots=True)
class Listen:
    host: str
    port: int
    ssl_context: ssl.SSLContext | None = None
    token: str | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"


class ReloadCollector:
    """Config reload metrics, in the spirit of Prometheus' own."""

    def __init__(self) -> None:
        self.success = 1.0
        self.last_success = time.time()

    def collect(self):
        yield GaugeMetricFamily(
            "agentha_config_last_reload_successful",
            "1 when the last inventory (re)load succeeded.",
            value=self.success,
        )
        yield GaugeMetricFamily(
            "agentha_config_last_reload_success_timestamp_seconds",
            "When the inventory was last loaded successfully (UNIX time).",
            value=self.last_success,
        )


class MonitorServer:
    """A Monitor with its API site; ``async with`` starts both, leaving stops both."""

    def __init__(
        self,
        inventory: Inventory,
        listen: Listen,
        settings: MonitorSettings | None = None,
        *,
        filters: tuple[RedactSecrets, QuietProduction] | None = None,
        environ: Mapping[str, str] | None = None,
        mqtt: MqttSettings | None = None,
        shard: Shard | None = None,
    ) -> None:
        self.shard = shard
        self.inventory = inventory  # the whole inventory; the monitor probes its shard of it
        self.monitor = Monitor(self._own_part(inventory), settings)
        self.publisher = (
            Publisher(mqtt, self.monitor.store, version=VERSION) if mqtt is not None else None
        )
        self._publishing: asyncio.Task[None] | None = None
        # Chaos runs may name any agent of the whole inventory, sharded or not.
        self.chaos = ChaosBoard(self.monitor.store.events, lambda: self._agent_ids)
        self._agent_ids = frozenset(a.id for _e, _g, a in inventory.agents())
        self._sweeping: asyncio.Task[None] | None = None
        self.listen = listen
        self.reloads = ReloadCollector()
        self._filters = filters
        self._environ = environ
        self._runner: web.AppRunner | None = None
        self._task: asyncio.Task[None] | None = None
        self.url = listen.url
        self._apply_filters()

    async def __aenter__(self) -> MonitorServer:
        registry = CollectorRegistry()
        monitor = self.monitor
        registry.register(
            MonitorCollector(monitor.store, monitor.scheduler, VERSION, ledger=monitor.ledger)
        )
        registry.register(self.reloads)
        registry.register(ChaosCollector(self.chaos))
        if monitor.audit is not None:
            registry.register(AuditCollector(monitor.audit))
        if self.publisher is not None:
            registry.register(MqttCollector(self.publisher, self.consensus))
        app = create_app(
            monitor.store,
            registry,
            token=self.listen.token,
            snapshot=self.snapshot,
            chaos=self.chaos,
        )
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, self.listen.host, self.listen.port, ssl_context=self.listen.ssl_context
        )
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = Listen(self.listen.host, port, self.listen.ssl_context).url
        self._task = asyncio.create_task(monitor.run())
        self._sweeping = asyncio.create_task(self.chaos.run())
        if self.publisher is not None:
            self._publishing = asyncio.create_task(self.publisher.run())
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self.publisher is not None and self._publishing is not None:
            # Time to say offline on the presence topic; a dead broker must not hold us up.
            self.publisher.stop()
            await asyncio.wait([self._publishing], timeout=3.0)
            self._publishing.cancel()
            # Bounded: leaving must never hang on the broker.
            await asyncio.wait([self._publishing], timeout=2.0)
        for task in (self._task, self._sweeping):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._runner is not None:
            await self._runner.cleanup()

    def reload(self, path: str | os.PathLike[str]) -> bool:
        """Load ``path`` again; on errors log them and keep the running inventory."""
        try:
            inventory = load_inventory(path, self._environ)
        except InventoryError as exc:
            self.reloads.success = 0.0
            for problem in exc.problems:
                log.error("reload refused, keeping the running inventory: %s", problem)
            return False
        self.inventory = inventory
        self._agent_ids = frozenset(a.id for _e, _g, a in inventory.agents())
        self.monitor.reload(self._own_part(inventory))
        self._apply_filters()
        self.reloads.success, self.reloads.last_success = 1.0, time.time()
        log.info("inventory reloaded: %s", inventory.summary())
        return True

    def _own_part(self, inventory: Inventory) -> Inventory:
        return inventory if self.shard is None else shard_inventory(inventory, self.shard)

    def consensus(self) -> dict[str, object] | None:
        """The consensus view over the whole inventory, when there are peers to agree with."""
        publisher = self.publisher
        if publisher is None or not publisher.settings.peers:
            return None
        groups = {
            g.id: (g.min_healthy, tuple(a.id for a in g.agents))
            for _e, g in self.inventory.groups()
        }
        return consensus(
            publisher.settings.monitor_id,
            self.monitor.store,
            publisher.peers,
            groups,
            shard=publisher.settings.shard,
        )

    def snapshot(self) -> dict[str, object]:
        """The monitor's snapshot, with ``consensus`` when there are peers."""
        snap = self.monitor.snapshot()
        snap["chaos"] = self.chaos.snapshot()
        view = self.consensus()
        if view is not None:
            snap["consensus"] = view
        return snap

    def _apply_filters(self) -> None:
        if self._filters is not None:
            redact, quiet = self._filters
            redact.update(self.monitor.secret_values())
            quiet.production = self.monitor.production_environments


async def serve(
    inventory_path: Path,
    listen: Listen,
    settings: MonitorSettings,
    *,
    filters: tuple[RedactSecrets, QuietProduction] | None = None,
    on_ready: Callable[[MonitorServer], None] | None = None,
    mqtt: MqttSettings | None = None,
    shard: Shard | None = None,
) -> None:
    """Run until SIGTERM or SIGINT; SIGHUP reloads ``inventory_path``."""
    inventory = load_inventory(inventory_path)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    async with MonitorServer(
        inventory, listen, settings, filters=filters, mqtt=mqtt, shard=shard
    ) as server:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, server.reload, inventory_path)
        heap = asyncio.create_task(freeze_when_warm(server.monitor.scheduler))
        try:
            if on_ready is not None:
                on_ready(server)
            await stop.wait()
        finally:
            heap.cancel()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
