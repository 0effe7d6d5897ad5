"""The generated HAProxy configuration, checked by HAProxy and run in front of the fleet.

The demo fleet's prod/orders group needs the health-check key and has orders-3 paused: a
real HAProxy started with the generated file must check the agents over verified TLS with
that key (given only through its environment), drain the paused agent, and carry a Locust
run whose timeline equals Locust's own totals while no call reaches orders-3.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from haproxy_helpers import backend_stats, front_certificate, haproxy_process
from load_helpers import agentha, free_port, locust_totals, timeline_totals

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

GROUP = "prod/orders"
PAUSED = "prod/orders/orders-3"


def _inventory_behind_haproxy(fleet, directory: Path, port: int, ca_bundle: Path) -> Path:
    """The fleet's inventory with prod/orders behind HAProxy, agents checked by host name."""
    data = yaml.safe_load((fleet.directory / "inventory.yaml").read_text())
    data["defaults"]["tls"]["ca_bundle"] = str(ca_bundle)
    entry = f"https://127.0.0.1:{port}"
    for env in data["environments"]:
        for group in env["groups"]:
            if f"{env['name']}/{group['name']}" != GROUP:
                continue
            gateway = group["entrypoint"]
            group["entrypoint"] = entry
            for check in group["api_checks"]:
                oauth = check.get("auth", {}).get("oauth2")
                if oauth:
                    oauth["token_url"] = oauth["token_url"].replace(gateway, entry)
            for agent in group["agents"]:
                # fleetsim certificates name NAME.GROUP.ENV.test besides the IP address.
                agent["tls"] = {"server_name": f"{agent['name']}.orders.prod.test"}
    path = directory / "inventory.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _api_calls(fleet, agent_id: str) -> int:
    """API calls the agent has answered, from its own /metrics (status checks left out)."""
    context: ssl.SSLContext = fleet.ssl_context()
    url = fleet.url(agent_id) + "/metrics"
    with urllib.request.urlopen(url, context=context, timeout=5) as answer:
        text = answer.read().decode()
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith("frends_agent_http_requests_total")
        and 'route="status"' not in line
        and 'route="metrics"' not in line
    )


def test_generated_config_passes_haproxy_check(fleet, tmp_path: Path) -> None:
    front, _ = front_certificate(tmp_path)
    config = tmp_path / "haproxy.cfg"
    made = agentha(
        "lb", "haproxy-config", "-c", str(fleet.directory / "inventory.yaml"), "--group", GROUP,
        "--cert", str(front), "--stats", "127.0.0.1:8404", "-o", str(config), env=fleet.secrets,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    text = config.read_text()
    key_var = "FLEETSIM_PROD_HC_KEY"
    assert f'hdr health-check-api-key "${{{key_var}}}"' in text
    assert fleet.secrets[key_var] not in text
    assert "http-check expect status 200" in text and "option redispatch" in text
    assert text.count("ssl verify required ca-file") == 4
    # The agents are addressed by IP: the operator is told what HAProxy cannot verify.
    assert "reached by IP address" in made.stderr
    # HAProxy reads the key from its environment, for a check as for a start.
    env = {**os.environ, key_var: fleet.secrets[key_var]}
    checked = subprocess.run(
        ["haproxy", "-c", "-f", str(config)], capture_output=True, text=True, timeout=20, env=env
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Configuration file is valid" in checked.stdout + checked.stderr
    # Without it HAProxy refuses the file rather than start with checks that cannot pass.
    env.pop(key_var)
    unset = subprocess.run(
        ["haproxy", "-c", "-f", str(config)], capture_output=True, text=True, timeout=20, env=env
    )
    assert unset.returncode != 0


def test_bad_group_or_flag_is_one_line(fleet) -> None:
    inventory = str(fleet.directory / "inventory.yaml")
    for args, message in [
        (("--group", "prod/nope"), "no group 'prod/nope'"),
        (("--group", GROUP, "--bind", "nowhere"), "--bind 'nowhere': expected ADDRESS:PORT"),
    ]:
        result = agentha("lb", "haproxy-config", "-c", inventory, *args, env=fleet.secrets)
        assert result.returncode == 2 and message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_haproxy_drains_the_paused_agent_under_load(fleet, tmp_path: Path) -> None:
    front, front_ca = front_certificate(tmp_path)
    bundle = tmp_path / "ca-bundle.pem"
    bundle.write_bytes(fleet.ca_file.read_bytes() + front_ca.read_bytes())
    port, stats_port = free_port(), free_port()
    inventory = _inventory_behind_haproxy(fleet, tmp_path, port, bundle)
    config = tmp_path / "haproxy.cfg"
    made = agentha(
        "lb", "haproxy-config", "-c", str(inventory), "--group", GROUP,
        "--bind", f"127.0.0.1:{port}", "--cert", str(front), "--stats", f"127.0.0.1:{stats_port}",
        "--inter", "0.5", "--fastinter", "0.2", "-o", str(config), env=fleet.secrets,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert made.stderr == ""  # every agent's host name is verified
    assert "verifyhost orders-1.orders.prod.test" in config.read_text()
    # The health-check key reaches HAProxy through its environment only.
    env = {**os.environ, "FLEETSIM_PROD_HC_KEY": fleet.secrets["FLEETSIM_PROD_HC_KEY"]}
    with haproxy_process(config, env):
        deadline = time.monotonic() + 15
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            try:
                states = {
                    name: row["status"]
                    for name, row in backend_stats(stats_port, "be_prod_orders").items()
                }
            except OSError:
                states = {}
            if states.get("orders-3") == "DOWN" and all(
                states.get(f"orders-{n}") == "UP" for n in (1, 2, 4)
            ):
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"HAProxy did not settle: {states}")

        before = _api_calls(fleet, PAUSED)
        out = tmp_path / "run"
        result = agentha(
            "load", "run", "-c", str(inventory), "--group", GROUP,
            "--shape", "steady:users=6,ramp=1s", "--duration", "4s", "--window", "2",
            "--threshold", "success>=99.9%", "--out", str(out), env=fleet.secrets,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        totals = timeline_totals(out / "timeline.jsonl")
        assert totals == locust_totals(out / "locust_totals.json")
        assert totals["Aggregated"][0] >= 10 and totals["Aggregated"][1] == 0

        assert _api_calls(fleet, PAUSED) == before  # drained: nothing reached it
        stats = backend_stats(stats_port, "be_prod_orders")
        assert stats["orders-3"]["stot"] == "0"
        assert sum(int(stats[f"orders-{n}"]["stot"]) for n in (1, 2, 4)) >= 10


# --- the generator on hand-written inventories (no HAProxy started) ---

KEYS = {"TEST_HC_KEY": "Hc-key-0001!x", "OTHER_HC_KEY": "Hc-key-0002!y"}


def _group(tmp_path: Path, group_yaml: str, key: bool = True):
    from loadtests.plan import find_group, read_inventory

    path = tmp_path / "inventory.yaml"
    defaults = "    defaults: {health_check_api_key: '${TEST_HC_KEY}'}\n" if key else ""
    path.write_text(
        "version: 1\nenvironments:\n  - name: test\n    profile: test\n"
        + defaults
        + "    groups:\n"
        + group_yaml
    )
    return find_group(read_inventory(path, KEYS), "test/orders")


def test_agents_with_host_names_are_verified_by_name(tmp_path: Path) -> None:
    from loadtests.haproxy import haproxy_config

    group = _group(
        tmp_path,
        "      - name: orders\n"
        "        entrypoint: https://orders.example.com\n"
        "        agents:\n"
        "          - {name: a1, url: 'https://frends-01.example.com:9443'}\n"
        "          - {name: a2, url: 'https://10.0.0.2:9443', tls: {server_name: a2.example.com,"
        " min_version: '1.3'}}\n",
    )
    config = haproxy_config(group)
    assert config.notes == () and config.environment == ("TEST_HC_KEY",)
    text = config.text
    assert "bind :443 ssl crt /etc/haproxy/certs/test-orders.pem alpn h2,http/1.1" in text
    assert (
        "server a1 frends-01.example.com:9443 ssl verify required ca-file @system-ca "
        "sni str(frends-01.example.com) verifyhost frends-01.example.com "
        "check-sni frends-01.example.com"
    ) in text
    assert (
        "server a2 10.0.0.2:9443 ssl verify required ca-file @system-ca ssl-min-ver TLSv1.3" in text
    )
    assert "verifyhost a2.example.com" in text
    assert 'hdr health-check-api-key "${TEST_HC_KEY}"' in text
    assert KEYS["TEST_HC_KEY"] not in text


def test_plain_http_is_generated_with_a_note(tmp_path: Path) -> None:
    from loadtests.haproxy import haproxy_config

    group = _group(
        tmp_path,
        "      - name: orders\n"
        "        entrypoint: http://orders.lab:8080\n"
        "        defaults: {allow_plaintext: true}\n"
        "        agents:\n"
        "          - {name: a1, url: 'http://lab-01:8080'}\n",
        key=False,
    )
    config = haproxy_config(group)
    assert "    bind :8080\n" in config.text and "ssl crt" not in config.text
    assert "    server a1 lab-01:8080\n" in config.text
    assert "health-check-api-key" not in config.text
    assert any("plain HTTP" in note for note in config.notes)


def test_agents_checked_differently_are_refused(tmp_path: Path) -> None:
    from loadtests.errors import LoadConfigError
    from loadtests.haproxy import haproxy_config

    group = _group(
        tmp_path,
        "      - name: orders\n"
        "        entrypoint: https://orders.example.com\n"
        "        agents:\n"
        "          - {name: a1, url: 'https://frends-01.example.com'}\n"
        "          - {name: a2, url: 'https://frends-02.example.com',"
        " health_check_api_key: '${OTHER_HC_KEY}'}\n",
    )
    with pytest.raises(LoadConfigError, match="agents use different health-check keys"):
        haproxy_config(group)
