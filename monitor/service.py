"""The monitor service: inventory in, probes scheduled, results into the StateStore.

This is the one place that wires the parts together (DESIGN.md, "Data flow in the monitor"):
Inventory -> Scheduler -> Probers -> ProbeResult -> StateStore + ProbeLedger -> events and logs.
Sinks (collector, HTTP API) read ``store`` and ``ledger``; nothing feeds back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from monitor.audit import AuditLoop, GroupAudit
from monitor.audit import Status as AuditStatus
from monitor.audit.exporters import snapshot_fragment
from monitor.events import Event
from monitor.inventory import Inventory
from monitor.ledger import ProbeLedger, result_to_dict
from monitor.probes import (
    AGENT_PROBERS,
    API_CHECK_PROBERS,
    PROBERS,
    ProbeResult,
    ProbeSession,
    ProbeTarget,
    Reason,
    TlsDetails,
    probe_status,
)
from monitor.probes.target import ApiCheckTarget
from monitor.scheduler import Job, Scheduler
from monitor.secrets import Secret
from monitor.state import GroupSpec, Liveness, StateStore
from monitor.targets import agent_target, check_filler, check_target

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProbeTiming:
    interval: float
    timeout: float
    fast_interval: float | None = None  # re-probe sooner after a failure


DEFAULT_TIMINGS: Mapping[str, ProbeTiming] = {
    "status": ProbeTiming(interval=5.0, timeout=3.0, fast_interval=1.0),
    "tls": ProbeTiming(interval=300.0, timeout=10.0),
    "plaintext": ProbeTiming(interval=300.0, timeout=10.0),
    "entrypoint": ProbeTiming(interval=10.0, timeout=5.0, fast_interval=2.0),
    "auth": ProbeTiming(interval=300.0, timeout=10.0),
}


@dataclass(frozen=True, slots=True)
class MonitorSettings:
    timings: Mapping[str, ProbeTiming] = field(default_factory=lambda: dict(DEFAULT_TIMINGS))
    rise: int = 2
    fall: int = 2
    concurrency: int = 512
    # The security audit of every group's API checks (monitor.audit), off when None.
    audit_interval: float | None = None
    audit_production: bool = False  # production environments too (the operator said --yes)


# Results that tell nothing about findings (the agent could not be reached): keep what we knew.
_NETWORK_REASONS = frozenset(
    {
        Reason.DNS,
        Reason.REFUSED,
        Reason.RESET,
        Reason.CONNECT_FAILED,
        Reason.TIMEOUT,
        Reason.NO_RESPONSE,
        Reason.NOT_HTTPS,
    }
)
_LIVENESS = {Reason.OK: Liveness.UP, Reason.PAUSED: Liveness.PAUSED}
_CERT_FAILURES = frozenset(
    r.value
    for r in (
        Reason.CERT_EXPIRED,
        Reason.CERT_NOT_YET_VALID,
        Reason.CERT_UNTRUSTED,
        Reason.CERT_HOSTNAME,
    )
)
_EXPIRY_FINDINGS = {"warning": "cert_expiring", "critical": "cert_expiring_critical"}


def findings_of(result: ProbeResult) -> frozenset[str] | None:
    """The findings a tls or plaintext result reports; None when it could not tell."""
    if result.reason in _NETWORK_REASONS:
        return None
    found = set() if result.reason is Reason.OK else {result.reason.value}
    details = result.details
    if isinstance(details, TlsDetails):
        if details.expiry_window in _EXPIRY_FINDINGS:
            found.add(_EXPIRY_FINDINGS[details.expiry_window])
        if details.tls10_accepted or details.tls11_accepted:
            found.add(Reason.LEGACY_TLS_ACCEPTED.value)
    return frozenset(found)


Target = ProbeTarget | ApiCheckTarget
_FAST_REPROBE = frozenset({"status", "entrypoint"})


def _applies(probe: str, target: Target) -> bool:
    if isinstance(target, ProbeTarget):
        return probe in AGENT_PROBERS
    if probe == "auth":
        return target.auth is not None  # only an API that asks for credentials can refuse
    return probe in API_CHECK_PROBERS


def groups_of(inventory: Inventory) -> dict[str, GroupSpec]:
    return {
        group.id: GroupSpec(group.min_healthy, tuple(a.id for a in group.agents))
        for _env, group in inventory.groups()
    }


class Monitor:
    """Runs every probe of an inventory and keeps the StateStore current.

    ``await monitor.run()`` until cancelled; ``reload(inventory)`` swaps the inventory in.
    """

    def __init__(self, inventory: Inventory, settings: MonitorSettings | None = None) -> None:
        self.settings = settings or MonitorSettings()
        self.inventory = inventory
        self.store = StateStore(
            groups_of(inventory), rise=self.settings.rise, fall=self.settings.fall
        )
        self.ledger = ProbeLedger()
        self.scheduler = Scheduler(concurrency=self.settings.concurrency)
        # Every probe target by id: agents (ENV/GROUP/AGENT) and API checks (ENV/GROUP:CHECK).
        self._targets: dict[str, Target] = {}
        self._sessions: dict[str, ProbeSession] = {}
        self._production: frozenset[str] = frozenset()
        self._install(inventory)
        self.audit: AuditLoop | None = None
        if self.settings.audit_interval is not None:
            self.audit = AuditLoop(
                inventory,
                self.settings.audit_interval,
                include_production=self.settings.audit_production,
                on_audit=self.record_audit,
            )

    # -- lifecycle -----------------------------------------------------------------------------

    async def run(self) -> None:
        self.scheduler.set_jobs(self._jobs())
        audits = asyncio.create_task(self.audit.run()) if self.audit is not None else None
        try:
            await self.scheduler.run()
        finally:
            if audits is not None:
                audits.cancel()
                await asyncio.gather(audits, return_exceptions=True)
            for session in self._sessions.values():
                session.close()

    def reload(self, inventory: Inventory) -> None:
        """Swap in a new, already validated inventory; known agents keep their state."""
        self.inventory = inventory
        self._install(inventory)
        self.store.set_topology(groups_of(inventory))
        self.ledger.forget(set(self._targets))
        self.scheduler.set_jobs(self._jobs())
        if self.audit is not None:
            self.audit.inventory = inventory
            groups = {group.id for _env, group in inventory.groups()}
            for gone in set(self.audit.latest) - groups:
                del self.audit.latest[gone]

    def _install(self, inventory: Inventory) -> None:
        targets: dict[str, Target] = {}
        for _env, group in inventory.groups():
            targets.update((a.id, agent_target(a)) for a in group.agents)
            checks = (check_target(group, check) for check in group.api_checks)
            targets.update((t.id, t) for t in checks)
        for gone in set(self._sessions) - set(targets):
            self._sessions.pop(gone).close()
        for target_id, target in targets.items():
            if self._targets.get(target_id) != target and target_id in self._sessions:
                self._sessions[target_id].close()  # settings changed: connect afresh
            self._sessions.setdefault(target_id, ProbeSession())
        self._targets = targets
        self._production = frozenset(e.name for e in inventory.environments if e.is_production)

    def _jobs(self) -> list[Job]:
        jobs = []
        for target_id, target in self._targets.items():
            for probe, timing in self.settings.timings.items():
                if not _applies(probe, target):
                    continue
                key = f"{probe}:{target_id}"
                # A live agent's status probe that has no answer within the fast interval
                # gets a second one on a fresh connection (the scheduler's hedge): a hung
                # agent fails both about a second apart, not one timeout after the other.
                hedged = probe == "status" and timing.fast_interval is not None
                jobs.append(
                    Job(
                        key=key,
                        run=self._runner(probe, target, key),
                        interval=timing.interval,
                        # The prober returns by its own deadline; this is the backstop.
                        timeout=timing.timeout + 1.0,
                        fast_interval=timing.fast_interval,
                        fast_failures=self.settings.fall,
                        fast_recovery=self.settings.rise - 1,
                        hedge=self._hedger(target, key) if hedged else None,
                        hedge_after=min(timing.fast_interval, timing.timeout) if hedged else None,
                    )
                )
        return jobs

    # -- one probe -----------------------------------------------------------------------------

    def _runner(self, probe: str, target: Target, key: str) -> Callable[[], Awaitable[bool]]:
        prober = PROBERS[probe]
        timeout = self.settings.timings[probe].timeout
        fill = check_filler(target) if isinstance(target, ApiCheckTarget) else None

        def reprobe() -> None:
            self.scheduler.trigger(key)

        async def run() -> bool:
            session = self._sessions[target.id]
            deadline = asyncio.get_running_loop().time() + timeout
            result = await prober(fill() if fill else target, session, deadline)
            self.record(result)
            if probe == "status" and session.status_connection is not None:
                # A stopped agent is noticed when its idle kept-alive connection drops, not
                # at the next interval: the drop asks for a status probe at once.
                session.status_connection.on_drop(reprobe)
            # Only failures of liveness checks call for a fast re-probe, not audit findings.
            return result.ok if probe in _FAST_REPROBE else True

        return run

    def _hedger(self, target: Target, key: str) -> Callable[[], Awaitable[bool]]:
        timeout = self.settings.timings["status"].timeout

        async def hedge() -> bool:
            fresh = ProbeSession()  # its own connection: the kept-alive one is busy
            deadline = asyncio.get_running_loop().time() + timeout
            try:
                result = await probe_status(target, fresh, deadline)
            except BaseException:
                fresh.close()
                raise
            self.record(result)
            session = self._sessions.get(target.id)
            if session is not None and session.status_connection is None and result.ok:
                # The kept-alive connection failed meanwhile: keep this one in its place.
                session.status_connection, fresh.status_connection = fresh.status_connection, None
                if session.status_connection is not None:
                    session.status_connection.on_drop(lambda: self.scheduler.trigger(key))
            fresh.close()
            return result.ok

        return hedge

    def record(self, result: ProbeResult) -> list[Event]:
        """Apply one result to the ledger and the store; log the transitions it caused."""
        self.ledger.record(result)
        if result.probe == "status":
            seen = _LIVENESS.get(result.reason, Liveness.DOWN)
            events = self.store.observe_status(result.target, seen, result.reason.value)
        elif result.probe == "entrypoint":
            group, check = result.target.split(":", 1)
            events = self.store.observe_entrypoint(group, check, result.ok, result.reason.value)
        elif result.probe == "auth":
            group, check = result.target.split(":", 1)
            if result.reason is Reason.OK or result.reason is Reason.UNAUTHENTICATED_ACCEPTED:
                found = [] if result.ok else [result.reason.value]
                self.store.set_group_findings(group, check, found)
            return []
        else:
            found = findings_of(result)
            if found is None:
                return []
            if found & _CERT_FAILURES:
                # The kept-alive status connection predates the bad certificate: reconnect so
                # the status probe judges the agent as a new client would.
                session = self._sessions.get(result.target)
                if session is not None:
                    session.close()
            events = self.store.set_findings(result.target, result.probe, found)
        for event in events:
            self._log_event(event)
        return events

    def record_audit(self, audit: GroupAudit) -> None:
        """A group's security audit: its findings by API check join the group's findings
        (snapshot, MQTT, dashboard) under ``CHECK audit``."""
        found: dict[str, set[str]] = {}
        for result in audit.results:
            words = found.setdefault(f"{result.check} audit", set())
            if result.status is AuditStatus.FAIL and result.finding is not None:
                words.add(result.finding.value)
        for key, words in found.items():
            self.store.set_group_findings(audit.id, key, words)
        if audit.failed:
            log.warning(
                "audit %s: %d finding(s) in %d requests",
                audit.id,
                audit.count(AuditStatus.FAIL),
                audit.requests,
                extra={"environment": audit.environment},
            )

    # -- views -----------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, object]:
        """The store's snapshot plus the last result of every probe and the inventory facts."""
        snap = self.store.snapshot()
        agents = snap["agents"]
        assert isinstance(agents, dict)
        for agent_id, entry in agents.items():
            entry["probes"] = {
                name: result_to_dict(result)
                for name, result in self.ledger.results_for(agent_id).items()
            }
        if self.audit is not None:
            snap["audit"] = snapshot_fragment(self.audit.latest.values())
        snap["environments"] = {
            env.name: {"profile": env.profile, "groups": [g.id for g in env.groups]}
            for env in self.inventory.environments
        }
        return snap

    def _log_event(self, event: Event) -> None:
        environment = event.id.split("/", 1)[0]
        bad = event.new in ("down", "unavailable")
        if bad:
            level = logging.ERROR if event.kind == "group" else logging.WARNING
        else:
            level = logging.INFO
        log.log(
            level,
            "%s %s: %s -> %s (%s)",
            event.kind,
            event.id,
            event.old,
            event.new,
            event.reason,
            extra={"environment": environment, "event": event.seq},
        )

    @property
    def production_environments(self) -> frozenset[str]:
        return self._production

    def secret_values(self) -> list[str]:
        """Every secret value the inventory resolved, for the log redaction filter."""
        return [secret.reveal() for secret in inventory_secrets(self.inventory)]


def inventory_secrets(inventory: Inventory) -> list[Secret]:
    found: list[Secret] = []
    for _env, group in inventory.groups():
        found += [a.health_check_api_key for a in group.agents if a.health_check_api_key]
        for check in group.api_checks:
            if check.auth is not None and check.auth.api_key is not None:
                found.append(check.auth.api_key.value)
            if check.auth is not None and check.auth.oauth2 is not None:
                found.append(check.auth.oauth2.client_secret)
    return found
