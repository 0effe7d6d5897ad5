"""The status endpoint's key, the sample API triggers and the OAuth2 token endpoint."""

from __future__ import annotations

import asyncio
import json

import pytest

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(30)]
PROD = "prod/orders/orders-1"
TEST = "test/orders/orders-1"


async def test_status_requires_the_health_check_key_in_prod(fleet):
    url = f"{fleet.url(PROD)}/frendsstatusinfo"
    assert (await fleet.fetch(url))[0] == 401
    wrong = {"health-check-api-key": "Wrong-Key-1234!"}
    assert (await fleet.fetch(url, headers=wrong))[0] == 401
    right = {"health-check-api-key": fleet.secrets["FLEETSIM_PROD_HC_KEY"]}
    status, _, body = await fleet.fetch(url, headers=right)
    assert status == 200
    assert '"executingProcesses"' in body


async def test_metrics_are_prometheus_text(fleet):
    status, headers, body = await fleet.fetch(f"{fleet.url(TEST)}/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    assert "# TYPE frends_agent_executing_processes gauge" in body
    assert "frends_agent_up 1" in body


async def test_api_needs_a_key_or_a_token(fleet):
    url = f"{fleet.url(TEST)}/api/orders"
    assert (await fleet.fetch(url))[0] == 401
    assert (await fleet.fetch(url, headers={"X-Api-Key": "Nope-nope-123!"}))[0] == 401
    assert (await fleet.fetch(url, headers={"Authorization": "Bearer abc.def"}))[0] == 401
    key = {"X-Api-Key": fleet.secrets["FLEETSIM_TEST_API_KEY"]}
    assert (await fleet.fetch(url, headers=key))[0] == 200
    # Another environment's key is not this one's.
    other = {"X-Api-Key": fleet.secrets["FLEETSIM_PROD_API_KEY"]}
    assert (await fleet.fetch(url, headers=other))[0] == 401


async def token_for(fleet, base: str, env: str) -> str:
    form = {
        "grant_type": "client_credentials",
        "client_id": f"fleetsim-{env}",
        "client_secret": fleet.secrets[f"FLEETSIM_{env.upper()}_CLIENT_SECRET"],
    }
    status, _, body = await fleet.fetch(f"{base}/oauth/token", "POST", data=form)
    assert status == 200, body
    return json.loads(body)["access_token"]


async def test_oauth2_client_credentials(fleet):
    token = await token_for(fleet, fleet.url(TEST), "test")
    bearer = {"Authorization": f"Bearer {token}"}
    # Any agent of the environment accepts a token another agent issued.
    url = f"{fleet.url('test/invoices/invoices-1')}/api/orders/3"
    status, _, body = await fleet.fetch(url, headers=bearer)
    assert status == 200
    assert '"id": 3' in body
    # Not in another environment.
    assert (await fleet.fetch(f"{fleet.url(PROD)}/api/orders/3", headers=bearer))[0] == 401


async def test_token_endpoint_rejects_bad_requests(fleet):
    url = f"{fleet.url(TEST)}/oauth/token"
    bad_grant = {"grant_type": "password", "client_id": "fleetsim-test", "client_secret": "x"}
    assert (await fleet.fetch(url, "POST", data=bad_grant))[0] == 400
    wrong = {
        "grant_type": "client_credentials",
        "client_id": "fleetsim-test",
        "client_secret": "Wrong-secret-123",
    }
    assert (await fleet.fetch(url, "POST", data=wrong))[0] == 401
    assert (await fleet.fetch(url, "POST", data={"grant_type": "client_credentials"}))[0] == 400


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"customer": "ACME", "items": [{"sku": "A-1", "qty": 2}]}, 201),
        ({"customer": "ACME", "items": []}, 400),
        ({"customer": "", "items": [{"sku": "A-1", "qty": 2}]}, 400),
        ({"customer": "ACME", "items": [{"sku": "A-1", "qty": "2"}]}, 400),
        ({"customer": "ACME", "items": [{"sku": "A-1", "qty": 2}], "admin": True}, 400),
        ([1, 2, 3], 400),
    ],
)
async def test_create_order_validates_input(fleet, body, expected):
    key = {"X-Api-Key": fleet.secrets["FLEETSIM_TEST_API_KEY"]}
    status, _, _ = await fleet.fetch(
        f"{fleet.url(TEST)}/api/orders", "POST", headers=key, json_body=body
    )
    assert status == expected


async def test_odd_input_gets_4xx(fleet):
    key = {"X-Api-Key": fleet.secrets["FLEETSIM_TEST_API_KEY"]}
    base = fleet.url(TEST)
    assert (await fleet.fetch(f"{base}/api/orders/abc", headers=key))[0] == 400
    assert (await fleet.fetch(f"{base}/api/orders/999", headers=key))[0] == 404
    assert (await fleet.fetch(f"{base}/api/orders?limit=-1", headers=key))[0] == 400
    assert (await fleet.fetch(f"{base}/nowhere", headers=key))[0] == 404
    broken = {**key, "Content-Type": "application/json"}
    status, _, _ = await fleet.fetch(f"{base}/api/orders", "POST", headers=broken, data=b"{no")
    assert status == 400
    huge = b'{"customer": "' + b"x" * 100_000 + b'"}'
    status, _, _ = await fleet.fetch(f"{base}/api/orders", "POST", headers=broken, data=huge)
    assert status == 413


async def test_paused_agent_answers_api_calls_with_503(fleet):
    fleet.set(TEST, paused=True)
    key = {"X-Api-Key": fleet.secrets["FLEETSIM_TEST_API_KEY"]}
    assert (await fleet.fetch(f"{fleet.url(TEST)}/api/orders", headers=key))[0] == 503


async def test_odd_header_bytes_get_401_not_500(fleet):
    agent = fleet.agents[PROD]
    host, port = agent["address"], agent["port"]
    odd = (b"health-check-api-key: \xff\xfe", b"X-Api-Key: \xff", b"Authorization: Bearer \xff.")
    for header in odd:
        path = b"/frendsstatusinfo" if header.startswith(b"health") else b"/api/orders"
        reader, writer = await asyncio.open_connection(
            host, port, ssl=fleet.ssl_context(), server_hostname=host
        )
        writer.write(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n\r\n")
        assert (await reader.readline()).startswith(b"HTTP/1.1 401"), header
        writer.close()
