"""The fleetsim driver against a real simulated fleet: each action applied, seen by a client,
and reverted (by a new driver instance, as recovery after a crash would)."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time

import aiohttp
import pytest

from chaos.drivers import DRIVERS, agent_settings, driver_class, make_driver
from chaos.drivers.fleetsim import FIELDS
from chaos.errors import DriverError, ExperimentError
from chaos.faults import Driver, Fault

AGENT = "test/orders/orders-1"
DEFAULTS = {field: default for field, default in FIELDS.values()}
pytestmark = pytest.mark.timeout(60)


def driver_for(fleet):
    return make_driver("fleetsim", {"fleet_json": str(fleet.directory / "fleet.json")})


def conditions(fleet, agent=AGENT):
    status, body = fleet.control("GET", f"/v1/agents/{agent}")
    assert status == 200, body
    return body


async def status_code(fleet, timeout_s=3.0):
    status, _, _ = await fleet.fetch(f"{fleet.url(AGENT)}/frendsstatusinfo", timeout_s=timeout_s)
    return status


async def api_status(fleet):
    headers = {"X-Api-Key": fleet.secrets["FLEETSIM_TEST_API_KEY"]}
    status, _, _ = await fleet.fetch(f"{fleet.url(AGENT)}/api/orders", headers=headers)
    return status


async def see_pause(fleet):
    assert await status_code(fleet) == 503


async def see_stop(fleet):
    with pytest.raises(aiohttp.ClientConnectorError) as caught:
        await status_code(fleet)
    assert isinstance(caught.value.os_error, ConnectionRefusedError)


async def see_hang(fleet):
    with pytest.raises(asyncio.TimeoutError):
        await status_code(fleet, timeout_s=0.5)


async def see_slow(fleet):
    started = time.monotonic()
    assert await status_code(fleet) == 200
    assert time.monotonic() - started >= 0.3


async def see_errors(fleet):
    assert [await api_status(fleet) for _ in range(3)] == [500, 500, 500]


async def see_cert(fleet):
    with pytest.raises(aiohttp.ClientConnectorCertificateError) as caught:
        await status_code(fleet)
    assert isinstance(caught.value.certificate_error, ssl.SSLCertVerificationError)
    assert "expired" in str(caught.value.certificate_error)


async def see_legacy_tls(fleet):
    assert await status_code(fleet) == 200  # TLS 1.2+ clients are still served


CASES = [
    ("pause", {}, "paused", True, see_pause),
    ("stop", {}, "stopped", True, see_stop),
    ("hang", {}, "hang", True, see_hang),
    ("slow", {"ms": 300}, "slow_ms", 300, see_slow),
    ("errors", {"rate": 1}, "error_rate", 1.0, see_errors),
    ("cert", {"state": "expired"}, "cert", "expired", see_cert),
    ("legacy_tls", {}, "legacy_tls", True, see_legacy_tls),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("action", "params", "field", "value", "see"), CASES, ids=[c[0] for c in CASES]
)
async def test_each_action_applies_and_a_new_driver_reverts_it(
    fleet, action, params, field, value, see
):
    assert await status_code(fleet) == 200
    fault = Fault(id=f"t/{action}", driver="fleetsim", action=action, agent=AGENT, params=params)
    first = driver_for(fleet)
    try:
        await first.inject(fault)
    finally:
        await first.close()
    agent = conditions(fleet)
    assert agent["conditions"][field] == value
    # Only that field changed, among those the driver touches.
    assert {f: agent["conditions"][f] for f in DEFAULTS} == {**DEFAULTS, field: value}
    await see(fleet)

    second = driver_for(fleet)  # a new process would only have settings and the fault
    try:
        await second.revert(fault)
        await second.revert(fault)  # idempotent
    finally:
        await second.close()
    assert conditions(fleet)["conditions"][field] == DEFAULTS[field]
    if action == "errors":
        assert await api_status(fleet) == 200
    assert await status_code(fleet) == 200


@pytest.mark.asyncio
async def test_ttl_is_sent_and_revert_cancels_it(fleet):
    driver = driver_for(fleet)
    fault = Fault(id="t/ttl", driver="fleetsim", action="pause", agent=AGENT, ttl_s=60)
    try:
        await driver.inject(fault)
        assert conditions(fleet)["reverts"] == {"paused": False}
        await driver.revert(fault)
    finally:
        await driver.close()
    agent = conditions(fleet)
    assert agent["reverts"] == {}
    assert agent["conditions"]["paused"] is False


@pytest.mark.asyncio
async def test_two_faults_on_one_agent_revert_independently(fleet):
    driver = driver_for(fleet)
    slow = Fault(id="t/slow", driver="fleetsim", action="slow", agent=AGENT, params={"ms": 50})
    errors = Fault(
        id="t/err", driver="fleetsim", action="errors", agent=AGENT, params={"rate": 0.5}
    )
    try:
        await driver.inject(slow)
        await driver.inject(errors)
        await driver.revert(slow)
        now = conditions(fleet)["conditions"]
        assert (now["slow_ms"], now["error_rate"]) == (0, 0.5)
        await driver.revert(errors)
    finally:
        await driver.close()
    assert conditions(fleet)["conditions"]["error_rate"] == 0.0


@pytest.mark.asyncio
async def test_reset_puts_agents_back_to_their_starting_state(fleet):
    # prod/orders/orders-3 starts paused in the demo fleet: reset keeps that, drops the rest.
    paused = "prod/orders/orders-3"
    fleet.set(AGENT, stopped=True, slow_ms=40)
    fleet.set(paused, hang=True)
    driver = driver_for(fleet)
    try:
        await driver.reset([AGENT, paused])
    finally:
        await driver.close()
    now = conditions(fleet)["conditions"]
    assert {field: now[field] for field in DEFAULTS} == DEFAULTS
    now = conditions(fleet, paused)["conditions"]
    assert {field: now[field] for field in DEFAULTS} == {**DEFAULTS, "paused": True}


@pytest.mark.asyncio
async def test_control_url_and_token_env(fleet, monkeypatch):
    monkeypatch.setenv("CHAOS_TEST_TOKEN", fleet.token)
    driver = make_driver(
        "fleetsim", {"control_url": fleet.info["control_url"], "token_env": "CHAOS_TEST_TOKEN"}
    )
    fault = Fault(id="t/p", driver="fleetsim", action="pause", agent="prod/orders/orders-2")
    try:
        await driver.inject(fault)
        assert conditions(fleet, "prod/orders/orders-2")["conditions"]["paused"] is True
        await driver.revert(fault)
    finally:
        await driver.close()
    assert conditions(fleet, "prod/orders/orders-2")["conditions"]["paused"] is False
    assert driver.describe(fault) == "pause prod/orders/orders-2 (fleetsim)"


@pytest.mark.asyncio
async def test_wrong_token_is_a_one_line_error_without_the_token(fleet, monkeypatch):
    wrong = "Wrong-Token-1234!"
    monkeypatch.setenv("CHAOS_TEST_TOKEN", wrong)
    driver = make_driver(
        "fleetsim", {"control_url": fleet.info["control_url"], "token_env": "CHAOS_TEST_TOKEN"}
    )
    fault = Fault(id="t/p", driver="fleetsim", action="pause", agent=AGENT)
    try:
        with pytest.raises(DriverError) as caught:
            await driver.inject(fault)
    finally:
        await driver.close()
    message = str(caught.value)
    assert message == (
        f"fleetsim: inject pause on {AGENT}: control API answered 401: "
        "missing or wrong bearer token"
    )
    assert wrong not in message and fleet.token not in message
    assert conditions(fleet)["conditions"]["paused"] is False


@pytest.mark.asyncio
async def test_unknown_agent_and_unset_token(fleet, monkeypatch):
    driver = driver_for(fleet)
    try:
        with pytest.raises(DriverError, match=r"answered 404: no agent test/orders/nobody$"):
            await driver.inject(Fault("f", "fleetsim", "stop", "test/orders/nobody"))
    finally:
        await driver.close()
    monkeypatch.delenv("CHAOS_UNSET_TOKEN", raising=False)
    driver = make_driver(
        "fleetsim", {"control_url": "http://127.0.0.1:9", "token_env": "CHAOS_UNSET_TOKEN"}
    )
    with pytest.raises(DriverError, match=r"^fleetsim: environment variable CHAOS_UNSET_TOKEN is"):
        await driver.inject(Fault("f", "fleetsim", "stop", AGENT))


@pytest.mark.asyncio
async def test_a_silent_control_api_times_out(monkeypatch):
    # A socket that listens and never accepts: the connection opens, no answer ever comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        monkeypatch.setenv("CHAOS_TEST_TOKEN", "Some-Token-1234!")
        driver = make_driver(
            "fleetsim",
            {
                "control_url": f"http://127.0.0.1:{port}",
                "token_env": "CHAOS_TEST_TOKEN",
                "timeout_s": 0.5,
            },
        )
        started = time.monotonic()
        try:
            with pytest.raises(DriverError, match=r"no answer from .* within 0\.5 s$"):
                await driver.revert(Fault("f", "fleetsim", "stop", AGENT))
        finally:
            await driver.close()
        assert time.monotonic() - started < 3


@pytest.mark.asyncio
async def test_a_missing_fleet_json_is_a_driver_error(tmp_path):
    driver = make_driver("fleetsim", {"fleet_json": str(tmp_path / "fleet.json")})
    with pytest.raises(DriverError, match=r"fleet.json does not exist \(is the fleet running"):
        await driver.revert(Fault("f", "fleetsim", "stop", AGENT))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "drivers.fleetsim.control_url: None is not valid; expected http://HOST:PORT"),
        ({"control_url": "ftp://x", "token_env": "T"}, "drivers.fleetsim.control_url: 'ftp://x'"),
        ({"control_url": "http://127.0.0.1:1"}, "drivers.fleetsim.token_env: missing"),
        (
            {"control_url": "http://127.0.0.1:1", "token_env": "not a name"},
            "drivers.fleetsim.token_env: missing or not a variable name",
        ),
        ({"fleet_json": "f.json", "token_env": "T"}, "drivers.fleetsim.fleet_json: given with"),
        ({"fleet_json": "f.json", "tokn": "T"}, "drivers.fleetsim.tokn: unknown field"),
        ({"fleet_json": "f.json", "timeout_s": 0}, "drivers.fleetsim.timeout_s: 0 is not valid"),
    ],
)
def test_bad_settings(settings, message):
    with pytest.raises(ExperimentError) as caught:
        make_driver("fleetsim", settings)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("action", "params", "ttl", "message"),
    [
        ("reboot", {}, None, "driver fleetsim: no action 'reboot'; expected one of cert, errors"),
        ("slow", {}, None, "fault f: params.ms: missing"),
        ("slow", {"ms": 0}, None, "fault f: params.ms: 0; expected 1..600000"),
        ("slow", {"ms": 5, "jitter": 1}, None, "fault f: params.jitter: unknown for slow"),
        ("errors", {"rate": 1.5}, None, "fault f: params.rate: 1.5; expected (0, 1]"),
        ("cert", {"state": "valid"}, None, "fault f: params.state: 'valid'; expected one of"),
        ("pause", {"x": 1}, None, "fault f: params.x: unknown for pause; expected no params"),
        ("pause", {}, -1, "fault f: ttl_s: -1; expected seconds in (0, 604800]"),
    ],
)
def test_bad_faults(action, params, ttl, message):
    driver = make_driver("fleetsim", {"fleet_json": "fleet.json"})
    with pytest.raises(ExperimentError) as caught:
        driver.check_fault(Fault("f", "fleetsim", action, AGENT, params, ttl))
    assert str(caught.value).startswith(message)


def test_agent_must_be_env_group_agent():
    driver = make_driver("fleetsim", {"fleet_json": "fleet.json"})
    with pytest.raises(ExperimentError, match="agent 'orders-1': expected ENV/GROUP/AGENT"):
        driver.check_fault(Fault("f", "fleetsim", "pause", "orders-1"))


# The registry (chaos.drivers): names to classes, imported on demand.


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_every_registered_driver_loads_under_its_name(name):
    cls = driver_class(name)
    assert issubclass(cls, Driver)
    assert cls.name == name


def test_an_unknown_driver_lists_the_known_ones():
    with pytest.raises(ExperimentError) as caught:
        make_driver("chaosmonkey", {})
    assert str(caught.value) == (
        "unknown driver 'chaosmonkey'; expected one of command, fleetsim, netns, proxy, signal"
    )


def test_agent_settings_prefer_the_full_id_to_the_name():
    agents = {"orders-1": {"pid": 2}, "prod/orders/orders-1": {"pid": 3}}
    assert agent_settings("signal", agents, "prod/orders/orders-1") == {"pid": 3}
    assert agent_settings("signal", agents, "test/orders/orders-1") == {"pid": 2}
    with pytest.raises(ExperimentError, match=r"^drivers\.signal\.agents: no entry for 'a/b/c'"):
        agent_settings("signal", agents, "a/b/c")
