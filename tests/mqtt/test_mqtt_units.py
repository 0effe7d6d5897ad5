"""The pure parts: rendezvous sharding, the quorum rule, broker URL and option checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.consensus import PeerView, decide
from monitor.inventory import load_inventory
from monitor.mqtt import PASSWORD_ENV, USERNAME_ENV, MqttConfigError, mqtt_settings
from monitor.mqtt_topics import parse
from monitor.shard import Shard, owner, parse_shard, shard_inventory

pytestmark = pytest.mark.timeout(10)

AGENTS = [f"prod/group-{i // 10}/agent-{i}" for i in range(3000)]


def assignment(agents: list[str], count: int) -> dict[str, int]:
    return {a: owner(a, count) for a in agents}


@pytest.mark.parametrize("count", [2, 3])
def test_every_agent_has_exactly_one_shard_and_shares_are_even(count: int) -> None:
    owners = assignment(AGENTS, count)
    shares = [sum(1 for o in owners.values() if o == k) for k in range(1, count + 1)]
    assert sum(shares) == len(AGENTS)
    assert all(abs(share - len(AGENTS) / count) < 0.1 * len(AGENTS) / count for share in shares)


def test_adding_agents_moves_none_of_the_existing_ones() -> None:
    before = assignment(AGENTS[:2000], 3)
    after = assignment(AGENTS, 3)
    assert all(after[a] == k for a, k in before.items())


def test_going_from_two_to_three_shards_moves_about_a_third() -> None:
    two, three = assignment(AGENTS, 2), assignment(AGENTS, 3)
    moved = [a for a in AGENTS if two[a] != three[a]]
    assert all(three[a] == 3 for a in moved)  # only to the new shard
    assert 0.28 < len(moved) / len(AGENTS) < 0.39


def test_shard_inventory_splits_the_demo_fleet(fleet) -> None:
    inventory = load_inventory(fleet.directory / "inventory.yaml", fleet.secrets)
    every = {a.id for _e, _g, a in inventory.agents()}
    checks = [c for _e, g in inventory.groups() for c in g.api_checks]
    for count in (2, 3):
        parts = [shard_inventory(inventory, Shard(k, count)) for k in range(1, count + 1)]
        probed = [a.id for part in parts for _e, _g, a in part.agents()]
        assert sorted(probed) == sorted(every)  # each agent by exactly one shard
        assert sum(len(g.api_checks) for p in parts for _e, g in p.groups()) == len(checks)


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "1/0", ""])
def test_bad_shards_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="K"):
        parse_shard(text)


@pytest.mark.parametrize(
    ("votes", "state"),
    [
        ({}, "unknown"),
        ({"a": "down"}, "down"),
        ({"a": "down", "b": "up"}, "up"),  # no quorum for down
        ({"a": "down", "b": "down", "c": "up"}, "down"),
        ({"a": "down", "b": "paused", "c": "up"}, "up"),
        ({"a": "paused", "b": "paused", "c": "up"}, "paused"),
    ],
)
def test_down_needs_a_quorum(votes: dict[str, str], state: str) -> None:
    assert decide(votes) == state


def test_peer_payloads_are_untrusted() -> None:
    view = PeerView(["m2"])
    view.on_presence("m2", json.dumps({"status": "online"}).encode())
    view.on_agent("m2", "e/g/a", b"not json")
    view.on_agent("m2", "e/g/b", json.dumps({"state": "exploded"}).encode())
    view.on_agent("m2", "e/g/c", json.dumps({"state": "down"}).encode())
    view.on_agent("m9", "e/g/c", json.dumps({"state": "down"}).encode())  # not a peer
    vantage = view.vantage("m2")
    assert vantage is not None and vantage.online and vantage.agents == {"e/g/c": "down"}
    assert vantage.cut_off
    view.on_agent("m2", "e/g/c", b"")  # a cleared retained topic
    assert vantage.agents == {} and view.vantage("m9") is None


def test_topics_parse_back() -> None:
    assert parse("agentha/v1/m1/agents/e/g/a") == ("m1", "agents", "e/g/a")
    assert parse("agentha/v1/m1/groups/e/g") == ("m1", "groups", "e/g")
    assert parse("agentha/v1/m1/presence") == ("m1", "presence", "")
    assert parse("agentha/v1/m1/agents/e/g") is None
    assert parse("other/v1/m1/presence") is None


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("mqtt://127.0.0.1", {}, "plain mqtt://"),
        ("mqtts://user:Secret-123!@broker", {}, "credentials do not belong in the URL"),
        ("http://broker", {}, "expected mqtts://"),
        ("mqtts://broker/topic", {}, "no path"),
        ("mqtts://broker:99999", {}, "port"),
        ("mqtts://broker", {"ca_file": Path("/nonexistent/ca.pem")}, "no such file"),
        ("mqtt://broker", {"insecure": True, "ca_file": Path("ca.pem")}, "mqtts:// only"),
        ("mqtts://broker", {"environ": {USERNAME_ENV: "u"}}, f"set both {USERNAME_ENV}"),
        ("mqtts://broker", {"peers": ("bad/id",)}, "monitor id 'bad/id'"),
    ],
)
def test_bad_broker_settings_are_one_line_errors(url, options, message) -> None:
    options.setdefault("environ", {})
    with pytest.raises(MqttConfigError, match=message) as raised:
        mqtt_settings(url, "m1", **options)
    assert "\n" not in str(raised.value) and "Secret-123!" not in str(raised.value)


def test_credentials_come_from_the_environment() -> None:
    got = mqtt_settings("mqtts://broker", "m1", environ={USERNAME_ENV: "u", PASSWORD_ENV: "p"})
    assert (got.username, got.password, got.port, got.url) == (
        "u",
        "p",
        8883,
        "mqtts://broker:8883",
    )
