"""One virtual Frends agent: its listeners, conditions, certificates and counters."""

from __future__ import annotations

import asyncio
import math
import random
import socket
import ssl
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fleetsim.certs import WRONG_HOST, Authority, Window
from fleetsim.conditions import Conditions, ConditionState
from fleetsim.credentials import EnvSecrets
from fleetsim.fleetspec import AgentPlan
from fleetsim.listener import Connections, Listener, starts_with_tls
from fleetsim.tlsctx import server_context


class CertStore:
    """Leaf certificates and server contexts, made on first use and cached per variant.

    ``load_cert_chain`` wants files, so leaves live in a private directory of this process.
    """

    def __init__(self, authority: Authority, directory: Path) -> None:
        self.authority = authority
        self.directory = directory
        self._key_file = directory / "leaf-key.pem"
        self._key_file.write_text(authority.key_pem(), encoding="ascii")
        self._key_file.chmod(0o600)
        self._contexts: dict[tuple[str, str, bool], ssl.SSLContext] = {}

    def context(self, plan: AgentPlan, cert: str, legacy: bool) -> ssl.SSLContext:
        """The server context of an agent for a certificate condition and TLS mode."""
        window, hosts = plan.window, [plan.address, f"{plan.name}.{plan.group}.{plan.env}.test"]
        if cert == "expired":
            window = Window(-60, -1)
        elif cert == "not_yet_valid":
            window = Window(1, 365)
        elif cert == "wrong_host":
            hosts = [WRONG_HOST]
        return self.server_context(plan.id, plan.address, hosts, window, cert, legacy)

    def server_context(
        self, name: str, address: str, hosts: list[str], window: Window, variant: str, legacy: bool
    ) -> ssl.SSLContext:
        key = (address, variant, legacy)
        ctx = self._contexts.get(key)
        if ctx is None:
            path = self.directory / f"{address}-{variant}.pem"
            if not path.exists():
                path.write_text(self.authority.issue(name, hosts, window), encoding="ascii")
            ctx = self._contexts[key] = server_context(path, self._key_file, legacy)
        return ctx


class VirtualAgent:
    """A simulated agent; the shared aiohttp app finds it by the connection's local address."""

    def __init__(
        self,
        plan: AgentPlan,
        secrets: EnvSecrets,
        certs: CertStore,
        server: Callable[[], asyncio.Protocol],
    ) -> None:
        self.plan = plan
        self.secrets = secrets
        self._certs = certs
        self._server = server
        self.tls = Listener(plan.address, self._accept_tls)
        self.plain = Listener(plan.address, self._accept_plain)
        self.connections = Connections()
        self.state = ConditionState(plan.start, self._changed)
        self.requests: Counter[tuple[str, int]] = Counter()
        self.started_at = time.time()
        self._phase = random.random() * 100  # noqa: S311 - load curves, not crypto
        self.unhung = asyncio.Event()
        self.unhung.set()

    @property
    def conditions(self) -> Conditions:
        return self.state.current

    def bind(self) -> None:
        """Take both ports (TLS and the extra plain-HTTP one)."""
        self.tls.bind()
        self.plain.bind()

    def start(self) -> None:
        """Apply the starting conditions to the listeners."""
        self._changed(Conditions(stopped=True), self.conditions)

    async def close(self) -> None:
        self.tls.close()
        self.plain.close()
        await self.connections.close()

    def tls_url(self) -> str:
        return f"https://{self.plan.address}:{self.tls.port}"

    def load(self) -> tuple[int, int]:
        """(executing processes, memory bytes): smooth, plausible, different per agent."""
        t = time.time() / 60 + self._phase
        processes = max(0, round(6 + 5 * math.sin(t) + 2 * math.sin(t * 3.7)))
        memory = int((220 + 40 * math.sin(t / 2) + 6 * processes) * 1024 * 1024)
        return processes, memory

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.plan.id,
            "env": self.plan.env,
            "group": self.plan.group,
            "name": self.plan.name,
            "address": self.plan.address,
            "port": self.tls.port,
            "url": self.tls_url(),
            "plain_http_port": self.plain.port,
            "conditions": self.conditions.model_dump(),
            "reverts": self.state.pending(),
        }

    def _changed(self, old: Conditions, new: Conditions) -> None:
        if new.hang:
            self.unhung.clear()
        else:
            self.unhung.set()
        if new.stopped and not old.stopped:
            self.tls.unlisten()
            self.plain.unlisten()
            self.connections.reset_all()
            return
        if new.stopped:
            return
        self.tls.listen()
        if new.plain_port == "closed":
            self.plain.unlisten()
        else:
            self.plain.listen()

    def _accept_tls(self, sock: socket.socket) -> None:
        self.connections.serve(sock, self._server, self._choose_ssl)

    def _accept_plain(self, sock: socket.socket) -> None:
        self.connections.serve(sock, self._server, None)

    async def _choose_ssl(self, sock: socket.socket) -> ssl.SSLContext | None:
        if self.conditions.plain_on_tls_port and await starts_with_tls(sock) is False:
            return None
        # Read the conditions after the peek: they may have changed while waiting.
        now = self.conditions
        return self._certs.context(self.plan, now.cert, now.legacy_tls)
