"""`agentha sim` as a user runs it: its files, workers, bad input and secrets."""

from __future__ import annotations

import stat
import subprocess
import sys

import pytest
import yaml
from conftest import start_sim

pytestmark = pytest.mark.timeout(60)


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_fleet_outputs(sim_fleet):
    directory = sim_fleet.directory
    info = sim_fleet.info
    assert mode(directory / "secrets.env") == 0o600
    assert mode(directory / "control-token") == 0o600
    assert (directory / "ca.pem").read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert info["control_url"].startswith("http://127.0.0.1:")
    assert {"token_file", "ca_file", "secrets_file", "inventory_file", "pid"} <= set(info)
    assert len(info["agents"]) == 8 and len(info["gateways"]) == 3

    inventory = yaml.safe_load((directory / "inventory.yaml").read_text())
    assert inventory["defaults"]["tls"]["ca_bundle"] == "ca.pem"
    prod = next(e for e in inventory["environments"] if e["name"] == "prod")
    assert prod["defaults"]["health_check_api_key"] == "${FLEETSIM_PROD_HC_KEY}"
    group = prod["groups"][0]
    assert group["entrypoint"] == sim_fleet.gateways["prod/orders"]["url"]
    assert group["min_healthy"] == 3
    auths = [check["auth"] for check in group["api_checks"]]
    assert {next(iter(a)) for a in auths} == {"api_key", "oauth2"}
    text = (directory / "inventory.yaml").read_text()
    for value in sim_fleet.secrets.values():
        assert value not in text
    assert set(sim_fleet.secrets) == {
        "FLEETSIM_TEST_API_KEY",
        "FLEETSIM_TEST_CLIENT_SECRET",
        "FLEETSIM_PROD_API_KEY",
        "FLEETSIM_PROD_CLIENT_SECRET",
        "FLEETSIM_PROD_HC_KEY",
    }


@pytest.mark.asyncio
async def test_workers_relay_control_to_the_agent_they_host(tmp_path):
    with start_sim(tmp_path, "--agents", "8", "--workers", "2") as fleet:
        assert fleet.info["workers"] == 2
        last = fleet.info["agents"][-1]["id"]  # in the second worker
        status, _, _ = await fleet.fetch(f"{fleet.url(last)}/frendsstatusinfo")
        assert status == 200
        fleet.set(last, paused=True)
        status, _, _ = await fleet.fetch(f"{fleet.url(last)}/frendsstatusinfo")
        assert status == 503
        assert fleet.control("PATCH", f"/v1/agents/{last}/conditions", {"x": 1})[0] == 400
        _, listed = fleet.control("GET", "/v1/agents")
        assert len(listed["agents"]) == 8
        assert fleet.control("DELETE", "/v1/conditions") == (200, {"reset": 8})
        out, err = fleet.stop()
    assert not (tmp_path / "fleet.json").exists()
    assert "Traceback" not in out + err


def run_sim(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentha", "sim", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )


def test_bad_fleet_file_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "fleet.yaml"
    bad.write_text(
        "version: 1\nenvironments:\n  - name: test\n    groups:\n      - name: g\n"
        "        agents:\n          - name: a\n            certificate: {expires: 3}\n"
    )
    result = run_sim("--fleet", str(bad))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert str(bad) in result.stderr
    assert "environments[0].groups[0].agents[0].certificate.expires: unknown field" in result.stderr
    assert "Traceback" not in result.stderr


def test_weak_secret_from_env_names_the_variable_not_the_value(tmp_path):
    import os

    env = {**os.environ, "FLEETSIM_SIM_API_KEY": "weak-secret"}
    result = run_sim("--agents", "2", "--write-fleet", str(tmp_path), env=env)
    assert result.returncode == 2
    assert "FLEETSIM_SIM_API_KEY" in result.stderr
    assert "weak-secret" not in result.stderr + result.stdout


@pytest.mark.asyncio
async def test_canary_secret_never_reaches_the_output(tmp_path):
    canary = "Canary-Secret-9876"
    with start_sim(tmp_path, "--agents", "3", env={"FLEETSIM_SIM_API_KEY": canary}) as fleet:
        url = f"{fleet.url(fleet.info['agents'][0]['id'])}/api/orders"
        assert (await fleet.fetch(url, headers={"X-Api-Key": canary}))[0] == 200
        assert (await fleet.fetch(url, headers={"X-Api-Key": canary + "x"}))[0] == 401
        assert fleet.secrets["FLEETSIM_SIM_API_KEY"] == canary
        out, err = fleet.stop()
    assert "agentha sim: 3 agents" in out
    assert canary not in out + err
    assert not (tmp_path / "fleet.json").exists()
