"""From an experiment file to a plan: the group's agents, the drivers, every fault resolved.

Everything that can be refused is refused here, before anything is touched: the inventory
and group, the load settings, each driver's settings and each fault's action and
parameters. A dry run prints this plan; a real run executes it.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path

from chaos.drivers import make_driver
from chaos.errors import ExperimentError
from chaos.experiment import Experiment, FaultStep, PauseStep, RollingStep, Step
from chaos.faults import Driver, Fault
from chaos.targets import select_targets
from loadtests.errors import LoadError
from loadtests.plan import find_group, read_inventory
from loadtests.run import RunSettings, check_settings
from loadtests.shapes import parse_shape
from loadtests.thresholds import Threshold, parse_threshold

# Locust runs a little past the planned end, so the recovery window is never cut short.
LOAD_SLACK_S = 10.0


@dataclass
class PlannedStep:
    index: int
    step: Step
    faults: list[Fault] = field(default_factory=list)  # fault steps
    # rolling restarts: per agent (drain fault or None, restart fault)
    rolling: list[tuple[Fault | None, Fault]] = field(default_factory=list)


@dataclass
class Plan:
    experiment: Experiment
    profile: str  # the environment's profile ("production" needs --yes)
    agents: list[str]  # agent ids of the group, inventory order
    required: int  # min_healthy from the inventory
    steps: list[PlannedStep]
    drivers: dict[str, Driver]
    thresholds: tuple[Threshold, ...]
    load: RunSettings
    seed: int

    def all_faults(self) -> list[Fault]:
        out: list[Fault] = []
        for planned in self.steps:
            out += planned.faults
            for drain, restart in planned.rolling:
                out += [f for f in (drain, restart) if f is not None]
        return out

    def lines(self) -> list[str]:
        """The plan for people, one line per phase and fault."""
        exp, t = self.experiment, self.experiment.timings
        out = [
            f"experiment: {exp.title} ({exp.path})",
            f"group {exp.group}: {len(self.agents)} agents, min_healthy {self.required}, "
            f"profile {self.profile}; seed {self.seed}",
            f"load: {self.load.shape.spec()} through {exp.load.host or 'the group entrypoint'}",
            f"preflight: wait up to {t.preflight_timeout_s:g} s for the monitor to say "
            f"{exp.group} is {' or '.join(exp.hypothesis.group_status)}",
            f"warmup {t.warmup_s:g} s, baseline {t.baseline_s:g} s",
        ]
        for planned in self.steps:
            step = planned.step
            if isinstance(step, PauseStep):
                out.append(f"step {planned.index + 1}: pause {step.duration_s:g} s")
            elif isinstance(step, FaultStep):
                names = ", ".join(self.drivers[f.driver].describe(f) for f in planned.faults)
                out.append(f"step {planned.index + 1}: {names} for {step.duration_s:g} s")
            else:
                assert isinstance(step, RollingStep)
                drain = f"drain {step.drain_s:g} s, " if step.drain_first else ""
                out.append(
                    f"step {planned.index + 1}: rolling {step.action} over "
                    f"{len(planned.rolling)} agents, one at a time ({drain}hold {step.hold_s:g} s,"
                    f" up to {step.settle_s:g} s to settle)"
                )
        out.append(f"recovery {t.recovery_s:g} s; then every fault is reverted if still applied")
        for rollback in exp.rollbacks:
            what = rollback.command if rollback.kind == "command" else f"reset ({rollback.driver})"
            out.append(f"rollback: {what}")
        out.append(
            "hypothesis: "
            + "; ".join(
                [*exp.hypothesis.thresholds, f"group {' or '.join(exp.hypothesis.group_status)}"]
                + [
                    f"{label} <= {value:g} s"
                    for label, value in (
                        ("detection", exp.hypothesis.max_detection_s),
                        ("failover", exp.hypothesis.max_failover_s),
                        ("recovery", exp.hypothesis.max_recovery_s),
                    )
                    if value is not None
                ]
            )
        )
        return out


def make_plan(experiment: Experiment, out: Path, seed: int | None = None) -> Plan:
    """Resolve the experiment against its inventory. Raises ``ExperimentError``."""
    seed = seed if seed is not None else random.SystemRandom().randrange(1 << 31)
    rng = random.Random(seed)  # noqa: S311 - choosing targets, not a secret
    try:
        inventory = read_inventory(experiment.inventory, os.environ)
        group = find_group(inventory, experiment.group)
    except LoadError as exc:
        raise ExperimentError(f"{experiment.path}: inventory: {exc}") from None
    profile = next(env.profile for env in inventory.environments if env.name == group.environment)
    names = [agent.name for agent in group.agents]
    drivers = {}
    for name in experiment.drivers_used:
        try:
            drivers[name] = make_driver(name, experiment.drivers.get(name, {}))
        except ExperimentError as exc:
            raise ExperimentError(f"{experiment.path}: {exc}") from None
    steps: list[PlannedStep] = []
    for index, step in enumerate(experiment.method):
        planned = PlannedStep(index, step)
        if isinstance(step, FaultStep):
            chosen = select_targets(step.targets, names, rng)
            planned.faults = [
                Fault(
                    id=f"step-{index + 1}/{name}",
                    driver=step.driver,
                    action=step.action,
                    agent=f"{group.id}/{name}",
                    params=dict(step.params),
                    ttl_s=step.ttl_s,
                )
                for name in chosen
            ]
        elif isinstance(step, RollingStep):
            ttl = step.drain_s + step.hold_s + 2 * step.settle_s + 60
            for name in names:
                agent = f"{group.id}/{name}"
                drain = (
                    Fault(f"step-{index + 1}/{name}/drain", step.driver, "pause", agent, {}, ttl)
                    if step.drain_first
                    else None
                )
                restart = Fault(
                    f"step-{index + 1}/{name}/{step.action}", step.driver, step.action, agent,
                    {}, ttl,
                )  # fmt: skip
                planned.rolling.append((drain, restart))
        steps.append(planned)
    plan_faults = [f for p in steps for f in p.faults] + [
        f for p in steps for pair in p.rolling for f in pair if f is not None
    ]
    for fault in plan_faults:
        try:
            drivers[fault.driver].check_fault(fault)
        except ExperimentError as exc:
            raise ExperimentError(f"{experiment.path}: {fault.id}: {exc}") from None
    thresholds = tuple(parse_threshold(t) for t in experiment.hypothesis.thresholds)
    length = experiment.planned_s(len(names))
    for step in experiment.method:
        if isinstance(step, RollingStep):
            length += 2 * step.settle_s * len(names)
    try:
        shape = parse_shape(experiment.load.shape, duration=f"{length + LOAD_SLACK_S:g}s")
        if shape.duration < length:
            raise ExperimentError(
                f"{experiment.path}: load.shape: duration {shape.duration:g} s is shorter than "
                f"the run ({length:g} s); leave duration out, the run sets it"
            )
        settings = RunSettings(
            inventory=experiment.inventory,
            group=experiment.group,
            shape=shape,
            thresholds=thresholds,
            window_s=experiment.hypothesis.window_s,
            out=out / "load",
            processes=experiment.load.processes,
            pacing_s=experiment.load.pacing_s,
            host=experiment.load.host,
        )
        check_settings(settings)
    except LoadError as exc:
        raise ExperimentError(f"{experiment.path}: load: {exc}") from None
    return Plan(
        experiment=experiment,
        profile=profile,
        agents=[f"{group.id}/{name}" for name in names],
        required=group.min_healthy,
        steps=steps,
        drivers=drivers,
        thresholds=thresholds,
        load=settings,
        seed=seed,
    )
