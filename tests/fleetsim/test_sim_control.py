"""The control API's guard and its answers to bad requests."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(30)
AGENT_PATH = "/v1/agents/test/orders/orders-1"


@pytest.mark.parametrize("token", ["", "not-the-token"])
def test_rejects_a_missing_or_wrong_token(fleet, token):
    for method, path, body in [
        ("GET", "/v1/agents", None),
        ("PATCH", f"{AGENT_PATH}/conditions", {"paused": True}),
        ("DELETE", "/v1/conditions", None),
    ]:
        status, payload = fleet.control(method, path, body, token=token)
        assert status == 401
        assert payload == {"error": "missing or wrong bearer token"}
    _, agent = fleet.control("GET", AGENT_PATH)
    assert agent["conditions"]["paused"] is False


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "body is not valid JSON"),
        (b"[]", "body must be a non-empty JSON object of condition fields"),
        (b"{}", "body must be a non-empty JSON object of condition fields"),
        (b'{"pausd": true}', "pausd: unknown field"),
        (b'{"paused": "yes"}', "paused: Input should be a valid boolean"),
        (b'{"error_rate": 1.5}', "error_rate: Input should be less than or equal to 1"),
        (b'{"slow_ms": -1}', "slow_ms: Input should be greater than or equal to 0"),
        (b'{"cert": "bogus"}', "cert: Input should be 'valid', 'expired', 'not_yet_valid' or"),
        (b'{"paused": true, "ttl_s": 0}', "ttl_s: Input should be greater than 0"),
        (b'{"ttl_s": 5}', "body names no condition field (only ttl_s)"),
    ],
)
def test_rejects_bad_bodies_with_400(fleet, raw, message):
    status, payload = fleet.control("PATCH", f"{AGENT_PATH}/conditions", raw=raw)
    assert status == 400
    assert payload["error"].startswith(message)


def test_unknown_agent_and_path(fleet):
    assert fleet.control("GET", "/v1/agents/test/orders/nobody")[0] == 404
    assert fleet.control("PATCH", "/v1/agents/x/y/z/conditions", {"paused": True})[0] == 404
    status, payload = fleet.control("GET", "/v1/nothing")
    assert status == 404
    assert "error" in payload


def test_lists_agents_and_gateways(fleet):
    status, body = fleet.control("GET", "/v1/agents")
    assert status == 200
    assert len(body["agents"]) == 8
    status, body = fleet.control("GET", "/v1/gateways")
    assert {g["id"] for g in body["gateways"]} == {"test/orders", "test/invoices", "prod/orders"}
