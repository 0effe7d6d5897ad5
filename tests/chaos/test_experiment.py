"""Experiment files: the resolved model, every broken sample's one-line error, the examples.

Each file in experiments/broken/ starts with ``# error: LINE: field.path: text``; loading it
must raise ``ExperimentError`` whose one line is ``FILE:LINE: field.path: text...``.
"""

from __future__ import annotations

import dataclasses
import os
import random
from pathlib import Path

import pytest
from conftest import SimFleet

from chaos.drivers import make_driver
from chaos.errors import ExperimentError
from chaos.experiment import (
    ALL,
    Experiment,
    FaultStep,
    PauseStep,
    RollbackStep,
    RollingStep,
    TargetSpec,
    load_experiment,
)
from chaos.faults import Fault
from chaos.targets import select_targets
from loadtests.shapes import parse_shape
from loadtests.thresholds import parse_threshold
from monitor.inventory import load_inventory

pytestmark = pytest.mark.timeout(30)

HERE = Path(__file__).parent
VALID = HERE / "experiments" / "valid"
BROKEN = HERE / "experiments" / "broken"
EXAMPLES = HERE.parent.parent / "examples" / "chaos"


def test_minimal_file_gets_every_default() -> None:
    path = VALID / "minimal.yaml"
    exp = load_experiment(path)
    assert exp.path == path
    assert exp.title == "Minimal"
    assert exp.description == ""
    assert exp.inventory == VALID.absolute() / "inventory.yaml"
    assert (exp.group, exp.environment, exp.group_name) == ("test/orders", "test", "orders")
    assert exp.monitor.url == "http://127.0.0.1:9731"
    assert exp.monitor.token_env is None
    h = exp.hypothesis
    assert h.window_s == 10 and isinstance(h.window_s, int)
    assert h.thresholds == ("success>=99.9%", "p95<300ms")
    assert h.judge_phases == ("baseline", "fault", "recovery")
    assert h.group_status == ("ok", "at_risk")
    assert (h.max_detection_s, h.max_failover_s, h.max_recovery_s) == (None, None, None)
    assert (exp.load.shape, exp.load.processes, exp.load.host, exp.load.pacing_s) == (
        "steady:users=10",
        0,
        None,
        1.0,
    )
    t = exp.timings
    assert (t.warmup_s, t.baseline_s, t.recovery_s, t.preflight_timeout_s) == (5, 10, 10, 30)
    (step,) = exp.method
    assert step == FaultStep(
        action="stop", targets=TargetSpec(mode="one"), duration_s=20.0, ttl_s=80.0
    )
    assert step.kind == "fault" and step.driver == "fleetsim" and dict(step.params) == {}
    assert exp.rollbacks == ()
    g = exp.guards
    assert (g.allow_outage, g.abort_success_below, g.abort_over_s) == (False, 0.5, 5)
    assert (g.abort_on_unavailable, g.max_run_s) == (False, 3600.0)
    assert dict(exp.drivers) == {}
    assert exp.outputs.dir is None
    assert exp.outputs.formats == ("json", "junit", "markdown", "html")


def test_full_file_resolves_every_key() -> None:
    exp = load_experiment(VALID / "full.yaml")
    base = VALID.absolute()
    assert exp.title == "Every key"
    assert exp.description == "Several lines\nof text."
    assert exp.inventory == base.parent / "fleet" / "inventory.yaml"  # normalised, no ".."
    assert exp.monitor.token_env == "AGENTHA_API_TOKEN"
    h = exp.hypothesis
    assert h.window_s == 60
    assert h.thresholds == ("success>=99.5%", "list-orders:p99<1s", "p95<300ms")
    assert h.judge_phases == ("fault", "recovery")
    assert h.group_status == ("ok",)
    assert (h.max_detection_s, h.max_failover_s, h.max_recovery_s) == (7.5, 5.0, 60.0)
    assert exp.load.processes == 2 and exp.load.pacing_s == 0.5
    assert exp.load.host == "https://127.0.0.1:8443"
    assert exp.timings.warmup_s == 0 and exp.timings.preflight_timeout_s == 45
    kinds = [s.kind for s in exp.method]
    assert kinds == ["fault", "pause", *["fault"] * 4, "rolling_restart", "rolling_restart"]
    slow = exp.method[0]
    assert isinstance(slow, FaultStep)
    assert slow.targets == TargetSpec(mode="names", names=("orders-2", "orders-1"))
    assert dict(slow.params) == {"ms": 500} and slow.ttl_s == 120
    assert exp.method[1] == PauseStep(duration_s=5)
    targets = [s.targets for s in exp.method[2:6] if isinstance(s, FaultStep)]
    assert targets == [
        TargetSpec(mode="random", count=2),
        TargetSpec(mode="percent", percent=50),
        TargetSpec(mode="all_but", count=1),
        ALL,
    ]
    assert exp.method[5].driver == "signal"
    assert exp.method[6] == RollingStep(drain_first=False, hold_s=10)
    assert exp.method[7] == RollingStep(action="hang", drain_s=2, settle_s=60)
    assert exp.rollbacks == (
        RollbackStep(kind="command", command="./restore.sh --all"),
        RollbackStep(kind="command", command="./restore.sh", timeout_s=120),
        RollbackStep(kind="reset", targets=ALL),
        RollbackStep(kind="reset", targets=TargetSpec(mode="names", names=("orders-3",))),
    )
    g = exp.guards
    assert (g.allow_outage, g.abort_success_below, g.abort_over_s) == (True, 0.8, 10)
    assert g.abort_on_unavailable is True and g.max_run_s == 1800
    # Relative paths in driver settings follow the experiment file, other values stay.
    fleetsim = exp.drivers["fleetsim"]
    assert fleetsim["fleet_json"] == str(base.parent / "fleet" / "fleet.json")
    assert fleetsim["timeout_s"] == 10
    pidfile = str(base / "run" / "orders-1.pid")  # nested paths too
    assert exp.drivers["signal"] == {"agents": {"orders-1": {"pidfile": pidfile}}}
    assert exp.drivers["command"]["inject"] == "echo {agent}"
    assert exp.drivers_used == ("fleetsim", "signal")
    assert [i for i, _ in exp.fault_steps] == [0, 2, 3, 4, 5]
    assert exp.outputs.dir == base / "runs" / "full"
    assert exp.outputs.formats == ("junit", "html")


def test_experiment_is_immutable() -> None:
    exp = load_experiment(VALID / "full.yaml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        exp.title = "changed"  # type: ignore[misc]
    with pytest.raises(TypeError):
        exp.drivers["fleetsim"]["fleet_json"] = "elsewhere"  # type: ignore[index]
    step = exp.method[0]
    assert isinstance(step, FaultStep)
    with pytest.raises(TypeError):
        step.params["ms"] = 1  # type: ignore[index]
    assert hash(exp.method[1]) == hash(PauseStep(duration_s=5))


def test_planned_length_counts_rolling_restarts_per_agent() -> None:
    exp = load_experiment(VALID / "full.yaml")
    fixed = 0 + 20 + 60 + 30 + 5 + 10 + 10 + 10 + 1
    # Rolling steps: (no drain + 10 hold) and (2 drain + 5 hold) per agent.
    assert exp.planned_s(group_size=1) == fixed + 10 + 7
    assert exp.planned_s(group_size=4) == fixed + 4 * (10 + 7)


def _expectations() -> list[Path]:
    return sorted(BROKEN.glob("*.yaml"))


@pytest.mark.parametrize("path", _expectations(), ids=lambda p: p.stem)
def test_broken_file_gives_one_line_error(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# error: "), f"{path.name} names no expected error"
    expected = f"{path}:{first.removeprefix('# error: ')}"
    with pytest.raises(ExperimentError) as info:
        load_experiment(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(expected), message
    assert "Secret" not in message  # values are never echoed


def test_there_are_many_broken_samples() -> None:
    assert len(_expectations()) >= 35


def test_every_problem_is_counted(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    path.write_text(
        "title: T\ninventory: i.yaml\ngroup: bad\nmonitor: {url: x}\n"
        "method:\n  - pause: 0s\n  - fault: {action: stop, targets: two, duration: 1s}\n"
    )
    with pytest.raises(ExperimentError) as info:
        load_experiment(path)
    # group, monitor.url, pause, targets: the first by line, then the count of the rest.
    assert str(info.value) == (
        f"{path}:3: group: expected ENV/GROUP as in the inventory, e.g. test/orders (and 3 more)"
    )


def test_unreadable_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ExperimentError, match=r"nothing\.yaml: cannot read the file: No such"):
        load_experiment(tmp_path / "nothing.yaml")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00title")
    with pytest.raises(ExperimentError, match="not UTF-8 text"):
        load_experiment(binary)


def test_a_driver_that_takes_any_action_is_not_second_guessed(tmp_path: Path) -> None:
    path = tmp_path / "command.yaml"
    path.write_text(
        "title: T\ninventory: i.yaml\ngroup: test/orders\n"
        "monitor: {url: 'http://127.0.0.1:9731'}\n"
        "method:\n  - fault: {action: reboot, targets: one, duration: 1s, driver: command}\n"
    )
    step = load_experiment(path).method[0]
    assert isinstance(step, FaultStep) and step.action == "reboot"


def test_absolute_and_home_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path = tmp_path / "e" / "x.yaml"
    path.parent.mkdir()
    path.write_text(
        "title: T\ninventory: ~/inv.yaml\ngroup: test/orders\n"
        "monitor: {url: 'http://127.0.0.1:9731'}\nmethod:\n  - pause: 1s\n"
        f"outputs: {{dir: {tmp_path / 'out'}}}\n"
    )
    exp = load_experiment(path)
    assert exp.inventory == tmp_path / "home" / "inv.yaml"
    assert exp.outputs.dir == tmp_path / "out"


def test_the_working_directory_does_not_matter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir("/")
    exp = load_experiment(os.path.relpath(VALID / "minimal.yaml", "/"))
    assert exp.inventory == VALID.absolute() / "inventory.yaml"


# --- the shipped examples ---

EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml"))


def test_there_are_eight_examples() -> None:
    assert [p.stem for p in EXAMPLE_FILES] == [
        "all-but-one-down",
        "expired-cert-one-agent",
        "hang-one-agent",
        "latency-one-agent",
        "pause-one-agent",
        "peak-with-one-down",
        "rolling-restart",
        "stop-one-agent",
    ]


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_example_loads_against_the_demo_fleet(path: Path) -> None:
    exp = load_experiment(path)
    demo = EXAMPLES.parent.parent.absolute() / "demo-fleet"
    assert exp.inventory == demo / "inventory.yaml"
    assert exp.drivers["fleetsim"]["fleet_json"] == str(demo / "fleet.json")
    assert exp.monitor.url == "http://127.0.0.1:9731"
    assert exp.group in ("test/orders", "prod/orders")  # demo groups with an API to load
    for threshold in exp.hypothesis.thresholds:
        parse_threshold(threshold)
    parse_shape(exp.load.shape, duration="10m")
    assert exp.planned_s(group_size=4) <= exp.guards.max_run_s
    # The README lists every example.
    assert f"`{path.name}`" in (EXAMPLES / "README.md").read_text(encoding="utf-8")


def test_examples_cover_the_issue() -> None:
    steps = {p.stem: load_experiment(p).method for p in EXAMPLE_FILES}

    def fault(name: str) -> FaultStep:
        (step,) = [s for s in steps[name] if isinstance(s, FaultStep)]
        return step

    assert fault("stop-one-agent").action == "stop"
    assert fault("stop-one-agent").targets == TargetSpec(mode="one")
    assert fault("pause-one-agent").action == "pause"
    assert fault("hang-one-agent").action == "hang"
    assert fault("latency-one-agent").action == "slow"
    assert dict(fault("latency-one-agent").params) == {"ms": 500}
    assert dict(fault("expired-cert-one-agent").params) == {"state": "expired"}
    assert len(fault("all-but-one-down").targets.names) == 3
    assert load_experiment(EXAMPLES / "all-but-one-down.yaml").guards.allow_outage
    assert fault("peak-with-one-down").action == "stop"
    peak = load_experiment(EXAMPLES / "peak-with-one-down.yaml")
    assert parse_shape(peak.load.shape).peak_users >= 10 * parse_shape(peak.load.shape).users
    (rolling,) = steps["rolling-restart"]
    assert isinstance(rolling, RollingStep) and rolling.drain_first


def test_experiment_model_matches_the_documented_names() -> None:
    # The run controller reads these attributes; renaming one breaks it.
    names = {f.name for f in dataclasses.fields(Experiment)}
    assert names == {
        "path",
        "title",
        "description",
        "inventory",
        "group",
        "monitor",
        "hypothesis",
        "load",
        "timings",
        "method",
        "rollbacks",
        "guards",
        "drivers",
        "outputs",
    }


def test_examples_plan_against_a_running_demo_fleet(sim_fleet: SimFleet) -> None:
    """Every example's group, targets, actions and parameters fit the real demo fleet."""
    inventory = load_inventory(sim_fleet.directory / "inventory.yaml", environ=sim_fleet.secrets)
    groups = {group.id: [a.name for a in group.agents] for _env, group in inventory.groups()}
    rng = random.Random(0)
    for path in EXAMPLE_FILES:
        exp = load_experiment(path)
        agents = groups[exp.group]
        assert len(agents) >= 2, path.name
        fleet_json = str(sim_fleet.directory / "fleet.json")
        driver = make_driver("fleetsim", {**exp.drivers["fleetsim"], "fleet_json": fleet_json})
        for index, step in exp.fault_steps:
            for name in select_targets(step.targets, agents, rng):
                fault = Fault(
                    id=f"step-{index}/{name}",
                    driver=step.driver,
                    action=step.action,
                    agent=f"{exp.group}/{name}",
                    params=dict(step.params),
                    ttl_s=step.ttl_s,
                )
                driver.check_fault(fault)  # raises ExperimentError for a bad plan
        for rollback in exp.rollbacks:
            assert select_targets(rollback.targets, agents, rng) == agents
