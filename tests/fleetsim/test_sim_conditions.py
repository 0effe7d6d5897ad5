"""Every control condition, seen from a client over real TLS on loopback."""

from __future__ import annotations

import asyncio
import ssl
import time
import warnings

import aiohttp
import pytest

AGENT = "test/orders/orders-1"
pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(30)]


def host_port(fleet, agent_id=AGENT):
    agent = fleet.agents[agent_id]
    return agent["address"], agent["port"]


async def status_of(fleet, agent_id=AGENT, **kwargs):
    status, _, _ = await fleet.fetch(f"{fleet.url(agent_id)}/frendsstatusinfo", **kwargs)
    return status


async def handshake_error(fleet, ctx=None) -> ssl.SSLCertVerificationError:
    host, port = host_port(fleet)
    with pytest.raises(ssl.SSLCertVerificationError) as caught:
        _, writer = await asyncio.open_connection(
            host, port, ssl=ctx or fleet.ssl_context(), server_hostname=host
        )
        writer.close()
    return caught.value


async def test_pause_and_resume(fleet):
    assert await status_of(fleet) == 200
    fleet.set(AGENT, paused=True)
    assert await status_of(fleet) == 503
    fleet.set(AGENT, paused=False)
    assert await status_of(fleet) == 200


async def test_stop_refuses_connections_and_start_serves_again(fleet):
    fleet.set(AGENT, stopped=True)
    with pytest.raises(aiohttp.ClientConnectorError) as caught:
        await status_of(fleet)
    assert isinstance(caught.value.os_error, ConnectionRefusedError)
    fleet.set(AGENT, stopped=False)
    assert await status_of(fleet) == 200


async def test_stop_resets_a_kept_alive_connection(fleet):
    host, port = host_port(fleet)
    reader, writer = await asyncio.open_connection(
        host, port, ssl=fleet.ssl_context(), server_hostname=host
    )
    request = f"GET /frendsstatusinfo HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    writer.write(request)
    assert (await reader.readline()).startswith(b"HTTP/1.1 200")
    await reader.readuntil(b"\r\n\r\n")
    fleet.set(AGENT, stopped=True)
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(), 5)
    writer.close()


async def test_hang_accepts_but_never_answers(fleet):
    connector = aiohttp.TCPConnector(ssl=fleet.ssl_context())
    url = f"{fleet.url(AGENT)}/frendsstatusinfo"
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(url) as answer:  # leaves a kept-alive connection in the pool
            assert answer.status == 200
        fleet.set(AGENT, hang=True)
        with pytest.raises(asyncio.TimeoutError):
            await session.get(url, timeout=aiohttp.ClientTimeout(total=1))
    # New connections are accepted (handshake included), then nothing comes back.
    host, port = host_port(fleet)
    reader, writer = await asyncio.open_connection(
        host, port, ssl=fleet.ssl_context(), server_hostname=host
    )
    writer.write(f"GET /frendsstatusinfo HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.readline(), 1)
    writer.close()
    fleet.set(AGENT, hang=False)
    assert await status_of(fleet) == 200


async def test_slow_adds_latency(fleet):
    started = time.monotonic()
    assert await status_of(fleet) == 200
    baseline = time.monotonic() - started
    fleet.set(AGENT, slow_ms=400)
    started = time.monotonic()
    assert await status_of(fleet) == 200
    assert time.monotonic() - started >= baseline + 0.4 - 0.05


async def test_error_rate_all_or_nothing(fleet):
    headers = {"X-Api-Key": fleet.secrets["FLEETSIM_TEST_API_KEY"]}
    url = f"{fleet.url(AGENT)}/api/orders"
    fleet.set(AGENT, error_rate=1.0)
    codes = [(await fleet.fetch(url, headers=headers))[0] for _ in range(10)]
    assert codes == [500] * 10
    fleet.set(AGENT, error_rate=0)
    codes = [(await fleet.fetch(url, headers=headers))[0] for _ in range(10)]
    assert codes == [200] * 10


@pytest.mark.parametrize(
    ("cert", "message"),
    [
        ("expired", "certificate has expired"),
        ("not_yet_valid", "certificate is not yet valid"),
        ("wrong_host", "IP address mismatch"),
    ],
)
async def test_certificate_conditions(fleet, cert, message):
    fleet.set(AGENT, cert=cert)
    error = await handshake_error(fleet)
    assert message in error.verify_message
    fleet.set(AGENT, cert="valid")
    assert await status_of(fleet) == 200


def tls10_client(fleet) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(fleet.ca_file)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    return ctx


async def test_legacy_tls_only_when_on(fleet):
    host, port = host_port(fleet)
    # Refused in the handshake: an alert, or a reset when the server drops the connection.
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        await asyncio.open_connection(host, port, ssl=tls10_client(fleet), server_hostname=host)
    fleet.set(AGENT, legacy_tls=True)
    _, writer = await asyncio.open_connection(
        host, port, ssl=tls10_client(fleet), server_hostname=host
    )
    assert writer.get_extra_info("ssl_object").version() == "TLSv1"
    writer.close()


async def test_plain_http_on_the_tls_port(fleet):
    host, port = host_port(fleet)
    plain = f"http://{host}:{port}/frendsstatusinfo"
    with pytest.raises(aiohttp.ClientError):
        await fleet.fetch(plain)
    fleet.set(AGENT, plain_on_tls_port=True)
    assert (await fleet.fetch(plain))[0] == 200
    assert await status_of(fleet) == 200  # TLS still works on the same port


async def test_plain_http_on_the_extra_port(fleet):
    agent = fleet.agents[AGENT]
    plain = f"http://{agent['address']}:{agent['plain_http_port']}/frendsstatusinfo"
    with pytest.raises(aiohttp.ClientConnectorError):
        await fleet.fetch(plain)
    fleet.set(AGENT, plain_port="serve")
    assert (await fleet.fetch(plain))[0] == 200
    fleet.set(AGENT, plain_port="redirect")
    status, headers, _ = await fleet.fetch(plain)
    assert status == 301
    assert headers["Location"] == f"{agent['url']}/frendsstatusinfo"


async def test_ttl_reverts_by_itself(fleet):
    payload = fleet.set(AGENT, paused=True, slow_ms=50, ttl_s=1)
    assert payload["reverts"] == {"paused": False, "slow_ms": 0}
    assert await status_of(fleet) == 503
    await asyncio.sleep(1.5)
    assert await status_of(fleet) == 200
    _, agent = fleet.control("GET", f"/v1/agents/{AGENT}")
    assert agent["conditions"]["slow_ms"] == 0
    assert agent["reverts"] == {}


async def test_reset_restores_starting_conditions(fleet):
    fleet.set(AGENT, paused=True, error_rate=0.5, cert="expired", ttl_s=60)
    status, agent = fleet.control("DELETE", f"/v1/agents/{AGENT}/conditions")
    assert status == 200
    assert agent["conditions"]["paused"] is False
    assert agent["reverts"] == {}
    # The demo fleet starts prod/orders/orders-3 paused; a reset keeps that.
    fleet.set("prod/orders/orders-3", paused=False)
    status, body = fleet.control("DELETE", "/v1/conditions")
    assert (status, body) == (200, {"reset": 8})
    _, paused = fleet.control("GET", "/v1/agents/prod/orders/orders-3")
    assert paused["conditions"]["paused"] is True
