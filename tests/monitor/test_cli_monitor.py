"""`agentha monitor` as a process: bad input, /metrics for promtool, SIGHUP reload, SIGTERM."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from monitor_process import monitor_process

pytestmark = pytest.mark.timeout(90)


def agentha(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentha", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "nowhere"], "--listen 'nowhere': expected HOST:PORT"),
        (["--status-interval", "0"], "expected 0 < seconds <= 86400, got 0"),
        (["--fall", "zero"], "expected a whole number, got 'zero'"),
        (["--tls-cert", "x.pem"], "--tls-cert and --tls-key go together"),
    ],
)
def test_bad_flags_are_one_line_errors(sim_fleet, args, message) -> None:
    done = agentha(
        "monitor", "-c", str(sim_fleet.directory / "inventory.yaml"), *args, env=sim_fleet.secrets
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_missing_and_invalid_inventories_are_reported_per_problem(tmp_path: Path) -> None:
    done = agentha("monitor", "-c", str(tmp_path / "none.yaml"))
    assert done.returncode == 2
    assert "none.yaml" in done.stderr and "cannot read the file" in done.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nenvironments: []\nsurprise: true\n")
    done = agentha("monitor", "-c", str(bad))
    assert done.returncode == 2
    assert all(line.startswith("error: ") for line in done.stderr.strip().splitlines())
    assert "surprise" in done.stderr and "Traceback" not in done.stderr


def wait_for(check, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


@pytest.fixture
def fleet_copy(sim_fleet, tmp_path: Path) -> Path:
    """The fleet's inventory in a folder of its own, free to be rewritten."""
    shutil.copy(sim_fleet.directory / "ca.pem", tmp_path / "ca.pem")
    shutil.copy(sim_fleet.directory / "inventory.yaml", tmp_path / "inventory.yaml")
    return tmp_path / "inventory.yaml"


def test_metrics_pass_promtool_and_sighup_reloads(sim_fleet, fleet_copy: Path) -> None:
    with monitor_process(fleet_copy, sim_fleet.secrets) as monitor:
        wait_for(
            lambda: all(g["status"] != "unknown" for g in monitor.snapshot()["groups"].values())
        )
        status, metrics = monitor.get("/metrics")
        assert status == 200 and 'agentha_group_status{environment="test"' in metrics
        lint = subprocess.run(
            ["promtool", "check", "metrics"],
            input=metrics,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert lint.returncode == 0 and lint.stdout + lint.stderr == "", lint.stdout + lint.stderr

        # A broken file is refused and the running inventory kept.
        good = fleet_copy.read_text()
        fleet_copy.write_text(good + "\nsurprise: true\n")
        monitor.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload refused" in "".join(monitor.log))
        assert "agentha_config_last_reload_successful 0.0" in monitor.get("/metrics")[1]
        assert "test/orders/orders-2" in monitor.snapshot()["agents"]

        # A good one without orders-2 is swapped in.
        doc = yaml.safe_load(good)
        orders = next(
            g
            for e in doc["environments"]
            for g in e["groups"]
            if e["name"] == "test" and g["name"] == "orders"
        )
        orders["agents"] = [a for a in orders["agents"] if a["name"] != "orders-2"]
        orders["min_healthy"] = 1
        fleet_copy.write_text(yaml.safe_dump(doc))
        monitor.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "test/orders/orders-2" not in monitor.snapshot()["agents"])
        assert "agentha_config_last_reload_successful 1.0" in monitor.get("/metrics")[1]
        assert monitor.snapshot()["agents"]["test/orders/orders-1"]["state"] != "unknown"

        monitor.proc.send_signal(signal.SIGTERM)
        assert monitor.proc.wait(timeout=10) == 0
    assert "Traceback" not in "".join(monitor.log)


def test_api_token_from_the_environment(sim_fleet, fleet_copy: Path) -> None:
    token = "Api-Token-0f-Tests!"
    with monitor_process(fleet_copy, {**sim_fleet.secrets, "AGENTHA_API_TOKEN": token}) as mon:
        assert mon.get("/api/v1/snapshot")[0] == 401
        assert mon.get("/metrics")[0] == 401
        assert mon.get("/healthz")[0] == 200
        assert "agents" in mon.snapshot(token)
    assert token not in "".join(mon.log)
