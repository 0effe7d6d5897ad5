"""The command driver runs real shell commands: templates, quoting, errors and timeouts."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from chaos.drivers import make_driver
from chaos.drivers.signals import alive
from chaos.errors import DriverError, ExperimentError
from chaos.faults import Fault

AGENT = "prod/orders/orders-1"
pytestmark = pytest.mark.timeout(30)


def fault(action="stop", agent=AGENT, **params):
    return Fault(id="step-1/x", driver="command", action=action, agent=agent, params=params)


@pytest.mark.asyncio
async def test_templates_are_filled_and_run(tmp_path):
    out = tmp_path / "out.txt"
    driver = make_driver(
        "command",
        {
            "inject": f"echo inject {{action}} {{agent}} {{env}} {{group}} {{name}} >> {out}",
            "revert": f"echo revert {{action}} {{host}}:{{port}} {{params.mode}} >> {out}",
            "agents": {"orders-1": {"host": "orders-1.example.net", "port": 8443}},
        },
    )
    f = fault("restart", mode="graceful")
    driver.check_fault(f)
    await driver.inject(f)
    await driver.revert(f)
    assert out.read_text().splitlines() == [
        "inject restart prod/orders/orders-1 prod orders orders-1",
        "revert restart orders-1.example.net:8443 graceful",
    ]
    described = driver.describe(f)
    assert described.startswith(f"restart {AGENT} (command: echo inject restart {AGENT} prod")
    assert described.endswith("...)") and len(described) < 140


@pytest.mark.asyncio
async def test_per_action_templates_override_the_defaults(tmp_path):
    driver = make_driver(
        "command",
        {
            "inject": f"touch {tmp_path}/default-{{action}}",
            "revert": "true",
            "actions": {"stop": {"inject": f"touch {tmp_path}/stop-only", "revert": "true"}},
        },
    )
    await driver.inject(fault("stop"))
    await driver.inject(fault("pause"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["default-pause", "stop-only"]


@pytest.mark.asyncio
async def test_a_hostile_agent_name_stays_one_quoted_word(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the commands run here: an unquoted `touch pwned` would show
    marker = tmp_path / "pwned"
    out = tmp_path / "out.txt"
    hostile = "prod/orders/x'; touch pwned; echo '$(touch pwned)`touch pwned` \"$HOME\" *"
    driver = make_driver(
        "command", {"inject": f"printf '%s\\n' {{name}} {{params.note}} > {out}", "revert": "true"}
    )
    await driver.inject(fault(agent=hostile, note="a b; rm -rf /nothing"))
    assert not marker.exists()
    assert out.read_text().splitlines() == [hostile.split("/")[2], "a b; rm -rf /nothing"]


@pytest.mark.asyncio
async def test_a_failing_command_names_the_step_and_exit_code(tmp_path):
    driver = make_driver(
        "command",
        {
            "inject": "echo starting; echo first >&2; echo 'no such unit' >&2; exit 3",
            "revert": "exit 0",
        },
    )
    with pytest.raises(DriverError) as caught:
        await driver.inject(fault())
    assert str(caught.value) == f"command: inject stop on {AGENT}: exited 3: no such unit"
    await driver.revert(fault())  # fine


@pytest.mark.asyncio
async def test_the_stderr_tail_is_one_line_of_at_most_200_characters():
    driver = make_driver(
        "command", {"inject": "printf 'x%.0s' $(seq 500) >&2; exit 1", "revert": "true"}
    )
    with pytest.raises(DriverError) as caught:
        await driver.inject(fault())
    message = str(caught.value)
    assert message.endswith("exited 1: " + "x" * 200)


@pytest.mark.asyncio
async def test_a_timeout_kills_the_whole_process_group(tmp_path):
    pidfile = tmp_path / "child.pid"
    driver = make_driver(
        "command",
        {"inject": f"sleep 30 & echo $! > {pidfile}; wait", "revert": "true", "timeout_s": 0.5},
    )
    started = time.monotonic()
    with pytest.raises(DriverError) as caught:
        await driver.inject(fault())
    assert time.monotonic() - started < 3
    assert str(caught.value) == (
        f"command: inject stop on {AGENT}: timed out after 0.5 s; its process group was killed"
    )
    child = int(pidfile.read_text())
    for _ in range(100):  # SIGKILL is delivered at once; allow the kernel a moment
        if not alive(child):
            break
        await asyncio.sleep(0.02)
    assert not alive(child)  # the background sleep went with its shell


@pytest.mark.asyncio
async def test_a_per_action_timeout(tmp_path):
    driver = make_driver(
        "command",
        {"actions": {"stop": {"inject": "true", "revert": "sleep 5", "timeout_s": 0.2}}},
    )
    await driver.inject(fault())
    with pytest.raises(DriverError, match=r"revert stop .*timed out after 0\.2 s"):
        await driver.revert(fault())


@pytest.mark.asyncio
async def test_only_listed_variables_reach_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("CHAOS_PASSED", "passed-value")
    monkeypatch.setenv("CHAOS_HIDDEN", "hidden-value")
    out = tmp_path / "env.txt"
    driver = make_driver(
        "command",
        {"inject": f"env > {out}", "revert": "true", "env": ["CHAOS_PASSED"]},
    )
    await driver.inject(fault())
    env = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    assert env["CHAOS_PASSED"] == "passed-value"
    assert "CHAOS_HIDDEN" not in env
    assert env["PATH"] == os.environ["PATH"]
    monkeypatch.delenv("CHAOS_PASSED")
    with pytest.raises(DriverError, match=r"^command: environment variable CHAOS_PASSED is not"):
        await driver.inject(fault())


@pytest.mark.asyncio
async def test_a_missing_shell_is_a_driver_error():
    driver = make_driver(
        "command", {"inject": "true", "revert": "true", "shell": "/nonexistent/sh"}
    )
    with pytest.raises(DriverError, match="cannot start /nonexistent/sh: No such file"):
        await driver.inject(fault())


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "drivers.command: no commands; expected inject and revert templates"),
        ({"inject": "true"}, "drivers.command.revert: expected a command template"),
        (
            {"inject": "echo {secret}", "revert": "true"},
            "drivers.command.inject: unknown placeholder {secret}; expected one of {agent}",
        ),
        (
            {"inject": "echo {agent!r}", "revert": "true"},
            "drivers.command.inject: unknown placeholder {agent}",
        ),
        ({"inject": "echo {", "revert": "true"}, "drivers.command.inject: Single '{'"),
        (
            {"inject": "true", "revert": "true", "timeout_s": -1},
            "drivers.command.timeout_s: -1 is not valid",
        ),
        (
            {"inject": "true", "revert": "true", "env": ["A B"]},
            "drivers.command.env: expected a list of environment variable names",
        ),
        (
            {"inject": "true", "revert": "true", "actions": {"stop": {"inject": "x"}}},
            "drivers.command.actions.stop.revert: expected a command template",
        ),
        (
            {"inject": "true", "revert": "true", "agents": {"a": {"user": "x"}}},
            "drivers.command.agents.a.user: unknown field; expected one of host, port",
        ),
        (
            {"inject": "true", "revert": "true", "shel": "bash"},
            "drivers.command.shel: unknown field",
        ),
    ],
)
def test_bad_settings(settings, message):
    with pytest.raises(ExperimentError) as caught:
        make_driver("command", settings)
    assert str(caught.value).startswith(message)


def test_bad_faults():
    driver = make_driver(
        "command",
        {"actions": {"stop": {"inject": "ssh {host} {params.unit}", "revert": "true"}}},
    )
    with pytest.raises(ExperimentError, match=r"^driver command: no action 'pause'; expected one"):
        driver.check_fault(fault("pause"))
    with pytest.raises(ExperimentError, match=r"uses \{host\} but drivers.command.agents has"):
        driver.check_fault(fault("stop", unit="x"))
    driver = make_driver("command", {"inject": "echo {params.unit}", "revert": "true"})
    with pytest.raises(ExperimentError, match=r"uses \{params.unit\} but params has none"):
        driver.check_fault(fault("stop"))
    with pytest.raises(ExperimentError, match=r"params\.unit: expected a name with a scalar"):
        driver.check_fault(fault("stop", unit=["a"]))


def test_unused_path_is_not_created(tmp_path):
    # check_fault only validates: it never runs anything.
    driver = make_driver("command", {"inject": f"touch {tmp_path}/ran", "revert": "true"})
    driver.check_fault(fault())
    assert not Path(tmp_path / "ran").exists()
