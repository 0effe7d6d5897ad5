"""The Prometheus collector: a view of the StateStore, read at scrape time.

Nothing is kept between scrapes and ``collect()`` does no I/O: every family is built from the
store and the scheduler as they are at that moment. Labels are bounded: environment, group and
agent names from the inventory, and enumerated states; never URLs, error text or secrets.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from monitor.scheduler import LAG_BUCKETS, Scheduler
from monitor.state import AgentState, GroupStatus, StateStore

PREFIX = "agentha"
AGENT_LABELS = ("environment", "group", "agent")
GROUP_LABELS = ("environment", "group")


def _agent_labels(agent_id: str) -> list[str]:
    return agent_id.split("/", 2)


def _group_labels(group_id: str) -> list[str]:
    return group_id.split("/", 1)


class MonitorCollector(Collector):
    def __init__(self, store: StateStore, scheduler: Scheduler | None, version: str) -> None:
        self._store = store
        self._scheduler = scheduler
        self._version = version

    def collect(self) -> Iterator[Metric]:
        yield from self._agents()
        yield from self._groups()
        yield from self._self_metrics()

    def _agents(self) -> Iterator[Metric]:
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
        for agent_id in self._store.agent_ids:
            record = self._store.agent(agent_id)
            labels = _agent_labels(agent_id)
            up.add_metric(labels, float(record.state in (AgentState.UP, AgentState.DEGRADED)))
            for value in AgentState:
                state.add_metric([*labels, value.value], float(record.state is value))
            if record.since is not None:
                since.add_metric(labels, record.since)
        yield from (up, state, since)

    def _groups(self) -> Iterator[Metric]:
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
        for group_id in self._store.group_ids:
            group = self._store.group(group_id)
            labels = _group_labels(group_id)
            n_healthy, n_required, n_total = self._store.group_counts(group_id)
            healthy.add_metric(labels, n_healthy)
            required.add_metric(labels, n_required)
            total.add_metric(labels, n_total)
            redundancy.add_metric(labels, n_healthy - n_required)
            for value in GroupStatus:
                status.add_metric([*labels, value.value], float(group.status is value))
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
                "probe_missed_runs",
                "Scheduled runs skipped because the previous run was still "
                "going or the scheduler fell behind.",
                scheduler.missed,
            ),
        ):
            yield CounterMetricFamily(f"{PREFIX}_{name}", doc, value=value)
