"""A chaos experiment, loaded and validated once: what the run controller consumes.

``load_experiment`` reads the YAML file, validates it (``chaos.experiment_file`` for single
fields, the rules below for what needs several) and returns an immutable ``Experiment`` with
every default applied, durations in seconds and paths made absolute. Any error raises
``ExperimentError`` with ONE line: ``FILE:LINE: field.path: what is wrong; expected ...``
for the first problem, and ``(and N more)`` when there are others.

Rollbacks are one dataclass, ``RollbackStep``, told apart by ``kind``:

* ``command``: ``command`` (a command line) and ``timeout_s``;
* ``reset``: ``driver`` and ``targets`` (default: all agents of the group), which puts the
  targets back to their starting state through the driver (fleetsim: DELETE conditions).

Driver settings are passed as written, except that a relative path in a key named
``fleet_json`` or ``pidfile`` or ending in ``_file``, ``_path`` or ``_dir`` (at any depth)
is made absolute against the
experiment's folder (like ``inventory`` and ``outputs.dir``), so a run works from any
working directory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from pydantic import ValidationError

from chaos.errors import ExperimentError
from chaos.experiment_file import (
    DRIVER_NAMES,
    CommandSpec,
    ExperimentFile,
    FaultSpec,
    ResetSpec,
    RollingRestartSpec,
)
from chaos.targets import ALL, TargetSpec
from monitor.inventory_rules import (
    FileUnusable,
    Issue,
    describe_error,
    drop_typo_twins,
    read_mapping_file,
)
from monitor.problems import Loc, Problem, loc_to_path
from monitor.yamlpos import YamlDocument

__all__ = [
    "ALL",
    "Experiment",
    "FaultStep",
    "Guards",
    "Hypothesis",
    "LoadSpec",
    "MonitorRef",
    "Outputs",
    "PauseStep",
    "RollbackStep",
    "RollingStep",
    "Step",
    "TargetSpec",
    "Timings",
    "load_experiment",
]

FAULT_TTL_MARGIN_S = 60.0


@dataclass(frozen=True, slots=True)
class MonitorRef:
    url: str
    token_env: str | None = None  # the NAME of the variable holding the token, never a value


@dataclass(frozen=True, slots=True)
class Hypothesis:
    window_s: int = 10
    thresholds: tuple[str, ...] = ("success>=99.9%", "p95<300ms")
    judge_phases: tuple[str, ...] = ("baseline", "fault", "recovery")
    group_status: tuple[str, ...] = ("ok", "at_risk")
    max_detection_s: float | None = None
    max_failover_s: float | None = None
    max_recovery_s: float | None = None


@dataclass(frozen=True, slots=True)
class LoadSpec:
    shape: str = "steady:users=10"
    processes: int = 0
    host: str | None = None
    pacing_s: float = 1.0


@dataclass(frozen=True, slots=True)
class Timings:
    warmup_s: float = 5.0
    baseline_s: float = 10.0
    recovery_s: float = 10.0
    preflight_timeout_s: float = 30.0


@dataclass(frozen=True, slots=True)
class FaultStep:
    action: str
    targets: TargetSpec
    duration_s: float
    driver: str = "fleetsim"
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    ttl_s: float | None = None  # resolved: duration_s + 60 when the file leaves it out
    kind: Literal["fault"] = "fault"


@dataclass(frozen=True, slots=True)
class PauseStep:
    duration_s: float
    kind: Literal["pause"] = "pause"


@dataclass(frozen=True, slots=True)
class RollingStep:
    driver: str = "fleetsim"
    action: str = "stop"
    drain_first: bool = True
    drain_s: float = 5.0
    hold_s: float = 5.0
    settle_s: float = 30.0
    kind: Literal["rolling_restart"] = "rolling_restart"


Step = FaultStep | PauseStep | RollingStep


@dataclass(frozen=True, slots=True)
class RollbackStep:
    kind: Literal["command", "reset"]
    command: str = ""  # kind "command"
    timeout_s: float = 30.0  # kind "command"
    driver: str = "fleetsim"  # kind "reset"
    targets: TargetSpec = ALL  # kind "reset"


@dataclass(frozen=True, slots=True)
class Guards:
    allow_outage: bool = False
    abort_success_below: float | None = 0.5
    abort_over_s: int = 5
    abort_on_unavailable: bool = False
    max_run_s: float = 3600.0


@dataclass(frozen=True, slots=True)
class Outputs:
    dir: Path | None = None  # absolute once loaded; None: the controller picks one
    formats: tuple[str, ...] = ("json", "junit", "markdown", "html")


@dataclass(frozen=True, slots=True)
class Experiment:
    path: Path
    title: str
    inventory: Path
    group: str
    monitor: MonitorRef
    method: tuple[Step, ...]
    description: str = ""
    hypothesis: Hypothesis = field(default_factory=Hypothesis)
    load: LoadSpec = field(default_factory=LoadSpec)
    timings: Timings = field(default_factory=Timings)
    rollbacks: tuple[RollbackStep, ...] = ()
    guards: Guards = field(default_factory=Guards)
    drivers: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))
    outputs: Outputs = field(default_factory=Outputs)

    @property
    def environment(self) -> str:
        return self.group.partition("/")[0]

    @property
    def group_name(self) -> str:
        return self.group.partition("/")[2]

    @property
    def fault_steps(self) -> tuple[tuple[int, FaultStep], ...]:
        """``(index, step)`` of every fault step, index counting every step from 0."""
        return tuple((i, s) for i, s in enumerate(self.method) if isinstance(s, FaultStep))

    @property
    def drivers_used(self) -> tuple[str, ...]:
        """Every driver a step or a reset rollback uses, in first-use order."""
        names = [s.driver for s in self.method if not isinstance(s, PauseStep)]
        names += [r.driver for r in self.rollbacks if r.kind == "reset"]
        return tuple(dict.fromkeys(names))

    def planned_s(self, group_size: int = 1) -> float:
        """The run's planned length from warmup to the end of recovery, without preflight.

        A rolling restart takes at least drain + hold per agent (``group_size`` agents) and
        at most settle more per agent, which is not counted here.
        """
        total = self.timings.warmup_s + self.timings.baseline_s + self.timings.recovery_s
        for step in self.method:
            if isinstance(step, RollingStep):
                drain = step.drain_s if step.drain_first else 0.0
                total += (drain + step.hold_s) * group_size
            else:
                total += step.duration_s
        return total


def load_experiment(path: Path) -> Experiment:
    """Read, validate and resolve an experiment file. Raises ``ExperimentError``."""
    path = Path(path)
    name = str(path)

    def fail(message: str, line: int | None = None) -> ExperimentError:
        return ExperimentError(str(Problem("experiment", message, name, "", line)))

    try:
        doc, issues = read_mapping_file(path, "title, group, method...")
    except FileUnusable as exc:
        raise fail(exc.message, exc.line) from None
    try:
        model = ExperimentFile.model_validate(doc.data)
    except ValidationError as exc:
        issues += drop_typo_twins([_describe(err) for err in exc.errors()])
        raise _error(issues, doc, name) from None
    experiment = _resolve(model, path)
    issues += _check(experiment)
    if issues:
        raise _error(issues, doc, name)
    return experiment


def _describe(err: Any) -> Issue:
    # A bad key of a mapping (drivers: {fleetsm: ...}) is located at the key itself.
    loc = tuple(err["loc"])
    if "[key]" in loc:
        err = {**err, "loc": loc[: loc.index("[key]")]}
        if err["type"] == "literal_error":
            expected = ", ".join(DRIVER_NAMES)
            return Issue("bad-key", err["loc"], f"unknown driver; expected one of {expected}")
    return describe_error(err, ExperimentFile)


def _error(issues: list[Issue], doc: YamlDocument, name: str) -> ExperimentError:
    problems = []
    seen: set[tuple[str, Loc, str]] = set()
    for issue in issues:
        key = (issue.code, issue.loc, issue.message)
        if key in seen:
            continue
        seen.add(key)
        line = issue.line or doc.line_of(issue.loc)
        problems.append(Problem(issue.code, issue.message, name, loc_to_path(issue.loc), line))
    problems.sort(key=lambda p: (p.line is None, p.line or 0))
    more = len(problems) - 1
    return ExperimentError(str(problems[0]) + (f" (and {more} more)" if more > 0 else ""))


# --- resolution ---


def _resolve(model: ExperimentFile, path: Path) -> Experiment:
    base = path.parent.absolute()
    h, load, t, g, o = model.hypothesis, model.load, model.timings, model.guards, model.outputs
    return Experiment(
        path=path,
        title=model.title.strip(),
        description=model.description.strip(),
        inventory=_absolute(base, model.inventory),
        group=model.group,
        monitor=MonitorRef(url=model.monitor.url, token_env=model.monitor.token_env),
        hypothesis=Hypothesis(
            window_s=int(h.window),
            thresholds=tuple(h.thresholds),
            judge_phases=tuple(h.judge_phases),
            group_status=tuple(h.group_status),
            max_detection_s=h.max_detection,
            max_failover_s=h.max_failover,
            max_recovery_s=h.max_recovery,
        ),
        load=LoadSpec(
            shape=load.shape, processes=load.processes, host=load.host, pacing_s=load.pacing
        ),
        timings=Timings(
            warmup_s=t.warmup,
            baseline_s=t.baseline,
            recovery_s=t.recovery,
            preflight_timeout_s=t.preflight_timeout,
        ),
        method=tuple(_step(entry) for entry in model.method),
        rollbacks=tuple(_rollback(entry.command, entry.reset) for entry in model.rollbacks),
        guards=Guards(
            allow_outage=g.allow_outage,
            abort_success_below=g.abort_success_below,
            abort_over_s=int(g.abort_over),
            abort_on_unavailable=g.abort_on_unavailable,
            max_run_s=g.max_run,
        ),
        drivers=MappingProxyType(
            {k: MappingProxyType(_driver_settings(base, v)) for k, v in model.drivers.items()}
        ),
        outputs=Outputs(
            dir=None if o.dir is None else _absolute(base, o.dir), formats=tuple(o.formats)
        ),
    )


def _absolute(base: Path, value: str) -> Path:
    # normpath, not resolve: "../x" reads better in messages and symlinks stay as written.
    return Path(os.path.normpath(base / Path(value).expanduser()))


def _driver_settings(base: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """Relative paths made absolute, at any depth (``agents.NAME.pidfile`` too)."""
    out = dict(settings)
    for key, value in settings.items():
        is_path = key in ("fleet_json", "pidfile") or key.endswith(("_file", "_path", "_dir"))
        if is_path and isinstance(value, str) and value:
            out[key] = str(_absolute(base, value))
        elif isinstance(value, dict):
            out[key] = _driver_settings(base, value)
    return out


def _step(entry: Any) -> Step:
    if entry.fault is not None:
        fault: FaultSpec = entry.fault
        return FaultStep(
            action=fault.action,
            targets=fault.targets,
            duration_s=fault.duration,
            driver=fault.driver,
            params=MappingProxyType(dict(fault.params)),
            ttl_s=fault.ttl if fault.ttl is not None else fault.duration + FAULT_TTL_MARGIN_S,
        )
    if entry.rolling_restart is not None:
        rolling: RollingRestartSpec = entry.rolling_restart
        return RollingStep(
            driver=rolling.driver,
            action=rolling.action,
            drain_first=rolling.drain_first,
            drain_s=rolling.drain,
            hold_s=rolling.hold,
            settle_s=rolling.settle,
        )
    return PauseStep(duration_s=entry.pause)


def _rollback(command: CommandSpec | None, reset: ResetSpec | None) -> RollbackStep:
    if command is not None:
        return RollbackStep(kind="command", command=command.run, timeout_s=command.timeout)
    assert reset is not None  # the model allows exactly one
    return RollbackStep(kind="reset", driver=reset.driver, targets=reset.targets)


# --- rules that need more than one field ---


def _check(experiment: Experiment) -> list[Issue]:
    issues = []
    for index, step in enumerate(experiment.method):
        if isinstance(step, PauseStep):
            continue
        key = "fault" if isinstance(step, FaultStep) else "rolling_restart"
        actions = _driver_actions(step.driver)
        if actions is not None and step.action not in actions:
            issues.append(
                Issue(
                    "bad-action",
                    ("method", index, key, "action"),
                    f"driver {step.driver} has no action {step.action!r}; expected one of "
                    + ", ".join(sorted(actions)),
                )
            )
    planned = experiment.planned_s()
    if planned > experiment.guards.max_run_s:
        issues.append(
            Issue(
                "run-too-long",
                ("guards", "max_run"),
                f"the run is planned to take at least {planned:g} s, more than max_run "
                f"{experiment.guards.max_run_s:g} s; expected a longer max_run or fewer steps",
            )
        )
    return issues


def _driver_actions(driver: str) -> frozenset[str] | None:
    """The driver's actions, or None when it takes any (or cannot be loaded here).

    Checking here gives the file and line; the driver's own ``check_settings`` and
    ``check_fault`` check settings and parameters when the controller builds the plan.
    """
    from chaos.drivers import driver_class  # the drivers pull in aiohttp: only when needed

    try:
        actions = driver_class(driver).actions
    except ExperimentError:
        return None
    return frozenset(actions) or None
