"""Pure pieces: the secret policy, OAuth tokens and the fleet file."""

from __future__ import annotations

import pytest

from fleetsim import credentials, fleetspec, tokens
from fleetsim.errors import FleetSpecError, SecretPolicyError


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("Short-1a", "shorter than 12 characters"),
        ("alllowercase-123", "has no an upper case letter"),
        ("ALLUPPERCASE-123", "has no a lower case letter"),
        ("NoDigitsHere-abc", "has no a digit"),
        ("NoSpecials123abc", "has no a special character"),
        ("Has space-123abc", "must be printable ASCII without spaces"),
        ("Fine-Secret-123", None),
    ],
)
def test_secret_policy(value, problem):
    assert credentials.policy_problem(value) == problem


def test_generated_secrets_pass_and_differ():
    values = {credentials.generate() for _ in range(50)}
    assert len(values) == 50
    assert all(credentials.policy_problem(v) is None for v in values)


def test_weak_secret_from_env_names_the_variable_only():
    with pytest.raises(SecretPolicyError) as caught:
        credentials.load([("prod", True)], {"FLEETSIM_PROD_HC_KEY": "weakweak"})
    assert "FLEETSIM_PROD_HC_KEY" in str(caught.value)
    assert "weakweak" not in str(caught.value)


def test_shared_secret_between_environments_is_refused():
    same = "Same-Secret-123"
    environ = {"FLEETSIM_A_API_KEY": same, "FLEETSIM_B_API_KEY": same}
    with pytest.raises(SecretPolicyError, match="FLEETSIM_A_API_KEY and FLEETSIM_B_API_KEY"):
        credentials.load([("a", False), ("b", False)], environ)


def test_tokens():
    key = b"k" * 32
    token = tokens.issue(key, "test", "client", now=1000)
    assert tokens.valid(key, token, "test", now=1001)
    assert not tokens.valid(key, token, "prod", now=1001)
    assert not tokens.valid(key, token, "test", now=1000 + tokens.TOKEN_LIFETIME_S)
    assert not tokens.valid(b"x" * 32, token, "test", now=1001)
    assert not tokens.valid(key, token[:-2] + "AA", "test", now=1001)
    assert not tokens.valid(key, "garbage", "test")


@pytest.mark.parametrize(("agents", "sizes"), [(1, [1]), (2, [2]), (7, [4, 3]), (10, [4, 3, 3])])
def test_quick_fleet_groups(agents, sizes):
    spec = fleetspec.quick(agents)
    assert [len(g.agents) for g in spec.environments[0].groups] == sizes


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 2\nenvironments: []\n", "f.yaml: version: Input should be 1"),
        (
            "version: 1\nenvironments:\n  - name: Bad Name\n    groups: []\n",
            "f.yaml: environments[0].name: String should match pattern",
        ),
        (
            "version: 1\nenvironments:\n  - name: t\n    groups:\n      - name: g\n"
            "        agents:\n          - name: a\n            conditions: {paused: maybe}\n",
            "f.yaml: environments[0].groups[0].agents[0].conditions.paused: Input should be",
        ),
        (
            "version: 1\nenvironments:\n  - name: t\n    colour: red\n    groups:\n"
            "      - name: g\n        agents: [{name: a}]\n",
            "f.yaml: environments[0].colour: unknown field",
        ),
        ("version: [1\n", "f.yaml: not valid YAML at line 2"),
        ("- just a list\n", "f.yaml: expected a mapping"),
    ],
)
def test_fleet_file_errors_name_file_and_field(text, message):
    with pytest.raises(FleetSpecError) as caught:
        fleetspec.parse(text, "f.yaml")
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_addresses_stay_in_the_base_and_skip_special_ones():
    plan = fleetspec.layout(fleetspec.quick(300), fleetspec.parse_base("127.88.0.0/16"))
    addresses = [a.address for a in plan.agents] + [g.address for g in plan.gateways]
    assert len(set(addresses)) == len(addresses)
    assert all(a.startswith("127.88.") and not a.endswith((".0", ".255")) for a in addresses)
    with pytest.raises(FleetSpecError, match=r"must be inside 127\.0\.0\.0/8"):
        fleetspec.parse_base("10.0.0.0/8")
    with pytest.raises(FleetSpecError, match="too small"):
        fleetspec.layout(fleetspec.quick(10), fleetspec.parse_base("127.9.9.0/29"))
