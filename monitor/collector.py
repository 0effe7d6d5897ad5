"""The Prometheus collector: a view of the StateStore, read at scrape time.

Nothing is kept between scrapes and ``collect()`` does no I/O: every family is built from the
store and the scheduler as they are at that moment. Labels are bounded: environment, group and
agent names from the inventory, and enumerated states; never URLs, error text or secrets.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from monitor.chaos_board import ChaosBoard
from monitor.ledger import ProbeLedger
from monitor.probes import PlaintextDetails, PortVerdict, Reason, StatusDetails, TlsDetails
from monitor.scheduler import LAG_BUCKETS, Scheduler
from monitor.state import AgentState, GroupStatus, StateStore

if TYPE_CHECKING:
    from monitor.mqtt import Publisher

PREFIX = "agentha"
SLICE = 500  # agents or groups between two pauses of a cooperative collection


class Pause:
    """Yielded between slices of a collection when ``cooperative`` is set: not a metric.

    At 10,000 agents one collection is most of a second of CPU; a reader on the event loop
    (the /metrics handler) sets ``cooperative`` and lets probes run at every pause, so none
    waits more than one slice. Any other reader (prometheus_client's own) never sees one.
    """


PAUSE = Pause()
cooperative: ContextVar[bool] = ContextVar("cooperative", default=False)


def _pauses() -> Iterator[int]:
    """Counts the items of a loop; the caller yields PAUSE when this says so."""
    return itertools.count(1) if cooperative.get() else itertools.repeat(1)


AGENT_LABELS = ("environment", "group", "agent")
GROUP_LABELS = ("environment", "group")


def _put(family: Metric, labels: dict[str, str], value: float) -> None:
    """``add_metric`` for a label-dict built once per agent: at 10,000 agents a scrape holds a
    quarter of a million series, and building each one's dict anew was most of collecting."""
    family.samples.append(Sample(family.name, labels, value, None))


def _one_hot(
    family: GaugeMetricFamily,
    labels: dict[str, str],
    key: str,
    values: type[StrEnum],
    current: str,
) -> None:
    """One series per possible value, 1 for the current one (a state as Prometheus likes it)."""
    for value in values:
        _put(family, {**labels, key: value.value}, float(value == current))


def _agent_labels(agent_id: str) -> list[str]:
    return agent_id.split("/", 2)


def _agent_dict(agent_id: str) -> dict[str, str]:
    return dict(zip(AGENT_LABELS, agent_id.split("/", 2), strict=True))


def _group_labels(group_id: str) -> list[str]:
    return group_id.split("/", 1)


def _group_dict(group_id: str) -> dict[str, str]:
    return dict(zip(GROUP_LABELS, group_id.split("/", 1), strict=True))


class MonitorCollector(Collector):
    def __init__(
        self,
        store: StateStore,
        scheduler: Scheduler | None,
        version: str,
        ledger: ProbeLedger | None = None,
    ) -> None:
        self._store = store
        self._scheduler = scheduler
        self._version = version
        self._ledger = ledger

    def collect(self) -> Iterator[Metric | Pause]:
        yield from self._agents()
        yield from self._groups()
        if self._ledger is not None:
            yield from _probe_metrics(self._ledger, self._store.agent_ids)
            yield from _check_metrics(self._ledger, self._store)
        yield from self._self_metrics()

    def _agents(self) -> Iterator[Metric | Pause]:
        up = GaugeMetricFamily(
            f"{PREFIX}_agent_up",
            "1 when the agent takes traffic (state up or degraded), else 0.",
            labels=AGENT_LABELS,
        )
        state = GaugeMetricFamily(
            f"{PREFIX}_agent_state",
            "The agent's state, one series per possible state with value 1 for the current one.",
            labels=(*AGENT_LABELS, "state"),
        )
        since = GaugeMetricFamily(
            f"{PREFIX}_agent_state_since_timestamp_seconds",
            "When the agent entered its current state (UNIX time).",
            labels=AGENT_LABELS,
        )
        findings = GaugeMetricFamily(
            f"{PREFIX}_agent_finding",
            "1 for each finding the agent has now (expiring certificate, plaintext served...).",
            labels=(*AGENT_LABELS, "finding"),
        )
        for n, agent_id in zip(_pauses(), self._store.agent_ids, strict=False):
            if n % SLICE == 0:
                yield PAUSE
            record = self._store.agent(agent_id)
            labels = _agent_dict(agent_id)
            _put(up, labels, float(record.state in (AgentState.UP, AgentState.DEGRADED)))
            _one_hot(state, labels, "state", AgentState, record.state)
            if record.since is not None:
                _put(since, labels, record.since)
            for finding in record.all_findings():
                _put(findings, {**labels, "finding": finding}, 1.0)
        yield from (up, state, since, findings)

    def _groups(self) -> Iterator[Metric | Pause]:
        def gauge(name: str, doc: str, extra: tuple[str, ...] = ()) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"{PREFIX}_group_{name}", doc, labels=(*GROUP_LABELS, *extra))

        healthy = gauge("healthy_agents", "Agents in the group that take traffic.")
        required = gauge("required_agents", "Agents the group needs (min_healthy).")
        total = gauge("agents", "Agents in the group.")
        redundancy = gauge("redundancy", "Healthy minus required agents; below 1: no spare.")
        status = gauge(
            "status", "Group status, one series per status, 1 for the current one.", ("status",)
        )
        entrypoint = gauge("entrypoint_up", "1 when the group's entrypoint checks pass.")
        for n, group_id in zip(_pauses(), self._store.group_ids, strict=False):
            if n % SLICE == 0:
                yield PAUSE
            group = self._store.group(group_id)
            labels = _group_labels(group_id)
            n_healthy, n_required, n_total = self._store.group_counts(group_id)
            healthy.add_metric(labels, n_healthy)
            required.add_metric(labels, n_required)
            total.add_metric(labels, n_total)
            redundancy.add_metric(labels, n_healthy - n_required)
            _one_hot(status, _group_dict(group_id), "status", GroupStatus, group.status)
            if group.entrypoint_ok is not None:  # not measured stays absent, not 0
                entrypoint.add_metric(labels, float(group.entrypoint_ok))
        yield from (healthy, required, total, redundancy, status, entrypoint)

    def _self_metrics(self) -> Iterator[Metric]:
        info = InfoMetricFamily(f"{PREFIX}_build", "agentha build information.")
        info.add_metric([], {"version": self._version})
        yield info
        events = CounterMetricFamily(
            f"{PREFIX}_events", "State transition events since the monitor started."
        )
        events.add_metric([], self._store.events.last_seq)
        yield events
        scheduler = self._scheduler
        if scheduler is None:
            return
        lag = scheduler.lag
        cumulative, buckets = 0, []
        for bound, count in zip(LAG_BUCKETS, lag.buckets, strict=True):
            cumulative += count
            buckets.append((repr(bound), cumulative))
        buckets.append(("+Inf", lag.count))
        yield HistogramMetricFamily(
            f"{PREFIX}_schedule_lag_seconds",
            "Time from a probe's due time to its start.",
            buckets=buckets,
            sum_value=lag.total,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_probes_in_flight", "Probes running now.", value=scheduler.in_flight
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_probe_jobs", "Probe jobs scheduled.", value=scheduler.job_count
        )
        for name, doc, value in (
            ("probe_runs", "Probe runs started.", scheduler.runs),
            ("probe_timeouts", "Probe runs cut off at their timeout.", scheduler.timeouts),
            (
                "probe_first_runs_deferred",
                "First runs of new jobs put off because the scheduler was behind.",
                scheduler.deferred,
            ),
            (
                "probe_hedges",
                "Second status probes on a fresh connection for a live agent slow to answer "
                "(also counted in probe runs).",
                scheduler.hedges,
            ),
            (
                "probe_missed_runs",
                "Scheduled runs skipped because the previous run was still "
                "going or the scheduler fell behind.",
                scheduler.missed,
            ),
        ):
            yield CounterMetricFamily(f"{PREFIX}_{name}", doc, value=value)


def _check_metrics(ledger: ProbeLedger, store: StateStore) -> Iterator[Metric]:
    labels = (*GROUP_LABELS, "check")
    success = GaugeMetricFamily(
        f"{PREFIX}_entrypoint_success",
        "1 when the last call of this API check through the group's entrypoint passed.",
        labels=labels,
    )
    latency = GaugeMetricFamily(
        f"{PREFIX}_entrypoint_duration_seconds",
        "Duration of the last call of this API check, token fetch included.",
        labels=labels,
    )
    open_api = GaugeMetricFamily(
        f"{PREFIX}_api_unauthenticated_accepted",
        "1 when the API check's API answered a call without credentials with success.",
        labels=labels,
    )
    for group_id in store.group_ids:
        for check in list(store.group(group_id).checks):
            results = ledger.results_for(f"{group_id}:{check}")
            check_labels = [*_group_labels(group_id), check]
            entry = results.get("entrypoint")
            if entry is not None:
                success.add_metric(check_labels, float(entry.ok))
                latency.add_metric(check_labels, entry.duration)
            auth = results.get("auth")
            if auth is not None and auth.reason in (Reason.OK, Reason.UNAUTHENTICATED_ACCEPTED):
                open_api.add_metric(check_labels, float(not auth.ok))
    yield from (success, latency, open_api)


def _probe_metrics(ledger: ProbeLedger, agent_ids: list[str]) -> Iterator[Metric | Pause]:
    def gauge(name: str, doc: str, extra: tuple[str, ...] = ()) -> GaugeMetricFamily:
        return GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=(*AGENT_LABELS, *extra))

    success = gauge("probe_success", "1 when the last probe of this kind succeeded.", ("probe",))
    duration = gauge(
        "probe_last_duration_seconds", "Duration of the last probe of this kind.", ("probe",)
    )
    processes = gauge("agent_executing_processes", "Executing processes the agent reports.")
    memory = gauge("agent_memory_bytes", "Memory the agent reports using.")
    leaf_expiry = gauge(
        "tls_leaf_expiry_timestamp_seconds", "When the agent's certificate expires (UNIX time)."
    )
    chain_expiry = gauge(
        "tls_chain_expiry_timestamp_seconds",
        "When the first certificate of the served chain expires (UNIX time).",
    )
    tls_version = gauge(
        "tls_version_info", "The TLS version negotiated by the last audit.", ("version",)
    )
    trusted = gauge("tls_chain_trusted", "1 when the certificate chain verifies.")
    hostname = gauge("tls_hostname_match", "1 when the certificate names the expected host.")
    legacy = gauge(
        "tls_legacy_accepted",
        "1 when the agent completes a handshake at this version.",
        ("version",),
    )
    plaintext = gauge("plaintext_served", "1 when the TLS port answers plain HTTP.")
    http_port = gauge(
        "http_port_open",
        "1 when a configured plain-HTTP port serves content instead of redirecting to https.",
        ("port",),
    )
    for n, agent_id in zip(_pauses(), agent_ids, strict=False):
        if n % SLICE == 0:
            yield PAUSE
        labels = _agent_dict(agent_id)
        # Copies (atomic under the GIL): the collector may run in a thread while probes record.
        for probe, result in list(ledger.results_for(agent_id).items()):
            with_probe = {**labels, "probe": probe}
            _put(success, with_probe, float(result.ok))
            _put(duration, with_probe, result.duration)
            details = result.details
            if isinstance(details, StatusDetails):
                if details.executing_processes is not None:
                    _put(processes, labels, details.executing_processes)
                if details.memory_bytes is not None:
                    _put(memory, labels, details.memory_bytes)
            elif isinstance(details, TlsDetails):
                # Certificate facts are exported even when verification failed.
                if details.not_after is not None:
                    _put(leaf_expiry, labels, details.not_after)
                if details.earliest_chain_expiry is not None:
                    _put(chain_expiry, labels, details.earliest_chain_expiry)
                if details.version is not None:
                    _put(tls_version, {**labels, "version": details.version}, 1.0)
                if details.chain_trusted is not None:
                    _put(trusted, labels, float(details.chain_trusted))
                if details.hostname_matches is not None:
                    _put(hostname, labels, float(details.hostname_matches))
                for version, accepted in (
                    ("1.0", details.tls10_accepted),
                    ("1.1", details.tls11_accepted),
                ):
                    if accepted is not None:
                        _put(legacy, {**labels, "version": version}, float(accepted))
            elif isinstance(details, PlaintextDetails):
                served = details.tls_port.verdict is PortVerdict.SERVES_HTTP
                _put(plaintext, labels, float(served))
                for port in details.http_ports:
                    open_ = port.verdict is PortVerdict.SERVES_HTTP
                    _put(http_port, {**labels, "port": str(port.port)}, float(open_))
    yield from (
        success,
        duration,
        processes,
        memory,
        leaf_expiry,
        chain_expiry,
        tls_version,
        trusted,
        hostname,
        legacy,
        plaintext,
        http_port,
    )

    failures = CounterMetricFamily(
        f"{PREFIX}_probe_failures",
        "Failed agent probes by reason.",
        labels=(*AGENT_LABELS, "probe", "reason"),
    )
    check_failures = CounterMetricFamily(
        f"{PREFIX}_check_failures",
        "Failed API check probes (entrypoint, auth) by reason.",
        labels=(*GROUP_LABELS, "check", "probe", "reason"),
    )
    for (target_id, probe, reason), count in list(ledger.failures.items()):
        group_id, is_check, check = target_id.partition(":")  # ENV/GROUP:CHECK
        if is_check:
            check_failures.add_metric([*_group_labels(group_id), check, probe, reason], count)
        else:
            failures.add_metric([*_agent_labels(target_id), probe, reason], count)
    yield from (failures, check_failures)
    drops = CounterMetricFamily(
        f"{PREFIX}_status_connection_drops",
        "Kept-alive status connections the agent closed or reset.",
        labels=AGENT_LABELS,
    )
    for agent_id, count in list(ledger.drops.items()):
        drops.add_metric(_agent_labels(agent_id), count)
    yield drops
    durations = HistogramMetricFamily(
        f"{PREFIX}_probe_duration_seconds", "Probe durations, by probe kind.", labels=("probe",)
    )
    for probe, histogram in list(ledger.durations.items()):
        durations.add_metric([probe], histogram.cumulative(), histogram.total)
    yield durations


class MqttCollector(Collector):
    """The MQTT publisher's connection and delivery counts, peers and the consensus view."""

    def __init__(
        self, publisher: Publisher, consensus: Callable[[], Mapping[str, Any] | None]
    ) -> None:
        self._publisher = publisher
        self._consensus = consensus

    def collect(self) -> Iterator[Metric]:
        publisher = self._publisher
        yield GaugeMetricFamily(
            f"{PREFIX}_mqtt_connected",
            "1 while the monitor is connected to its MQTT broker.",
            value=float(publisher.connected),
        )
        yield CounterMetricFamily(
            f"{PREFIX}_mqtt_events_published",
            "Events delivered to the MQTT broker (acknowledged at QoS 1).",
            value=publisher.published,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_mqtt_events_dropped",
            "Events never delivered to MQTT because the outage buffer overflowed.",
            value=publisher.dropped,
        )
        view = self._consensus()
        if view is None:
            return
        peer_up = GaugeMetricFamily(
            f"{PREFIX}_peer_up",
            "1 when the monitor (a vantage point) is online, by its last presence message.",
            labels=("monitor",),
        )
        cut_off = GaugeMetricFamily(
            f"{PREFIX}_peer_cut_off",
            "1 when an online monitor reaches none of its agents (left out of the quorum).",
            labels=("monitor",),
        )
        for monitor_id, point in view["vantage_points"].items():
            peer_up.add_metric([monitor_id], float(point["online"]))
            cut_off.add_metric([monitor_id], float(point["cut_off"]))
        yield from (peer_up, cut_off)
        state = GaugeMetricFamily(
            f"{PREFIX}_consensus_agent_state",
            "The agent's consensus state over all live vantage points, 1 for the current one.",
            labels=(*AGENT_LABELS, "state"),
        )
        voters = GaugeMetricFamily(
            f"{PREFIX}_consensus_agent_voters",
            "Vantage points whose view of the agent counts in its consensus state.",
            labels=AGENT_LABELS,
        )
        for agent_id, entry in view["agents"].items():
            labels = _agent_dict(agent_id)
            _one_hot(state, labels, "state", AgentState, entry["state"])
            _put(voters, labels, len(entry["votes"]))
        yield from (state, voters)
        status = GaugeMetricFamily(
            f"{PREFIX}_consensus_group_status",
            "The group's status from the agents' consensus states, 1 for the current one.",
            labels=(*GROUP_LABELS, "status"),
        )
        for group_id, entry in view["groups"].items():
            _one_hot(status, _group_dict(group_id), "status", GroupStatus, entry["status"])
        yield status


class ChaosCollector(Collector):
    """Chaos runs reported to this monitor: phases, the faults they hold, how they ended.

    The run id is no label (one per run, unbounded); the experiment is, and a board holds a
    bounded number of runs."""

    def __init__(self, board: ChaosBoard) -> None:
        self._board = board

    def collect(self) -> Iterator[Metric]:
        runs = GaugeMetricFamily(
            f"{PREFIX}_chaos_run_active",
            "1 per chaos run under way (or lost while holding faults), by experiment and phase.",
            labels=(*GROUP_LABELS, "experiment", "phase"),
        )
        faults = GaugeMetricFamily(
            f"{PREFIX}_chaos_fault_active",
            "1 per fault a chaos run holds on the agent, by action (stop, hang, pause...).",
            labels=(*AGENT_LABELS, "action"),
        )
        for run in self._board.runs.values():
            if not run.active:
                continue
            labels = _group_dict(run.group)
            _put(runs, {**labels, "experiment": run.experiment, "phase": run.phase}, 1.0)
            for agent_id, actions in run.faults.items():
                for action in actions:
                    _put(faults, {**_agent_dict(agent_id), "action": action}, 1.0)
        yield from (runs, faults)
        ended = CounterMetricFamily(
            f"{PREFIX}_chaos_runs_ended",
            "Chaos runs that ended, by verdict (lost: stopped reporting before the end).",
            labels=("verdict",),
        )
        for verdict, count in self._board.finished.items():
            ended.add_metric([verdict], count)
        yield ended
