"""The signal driver against a real local HTTP server with a pidfile and a restart command."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from chaos.drivers import make_driver
from chaos.drivers.signals import alive
from chaos.errors import DriverError, ExperimentError
from chaos.faults import Fault

AGENT = "test/orders/orders-1"
pytestmark = pytest.mark.timeout(60)

SERVER = """
import http.server, os, sys

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass

port, pidfile = int(sys.argv[1]), sys.argv[2]
server = http.server.HTTPServer(("127.0.0.1", port), Handler)
with open(pidfile + ".tmp", "w") as handle:  # written once listening: the pid means ready
    handle.write(str(os.getpid()))
os.replace(pidfile + ".tmp", pidfile)
server.serve_forever()
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A small HTTP server started in the background by a shell command, like a daemon."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.pidfile = directory / "agent.pid"
        self.starts = directory / "starts.log"
        script = directory / "server.py"
        script.write_text(SERVER)
        self.restart = (
            f"echo start >> {shlex.quote(str(self.starts))}; "
            f"{shlex.quote(sys.executable)} {shlex.quote(str(script))} {self.port} "
            f"{shlex.quote(str(self.pidfile))} >/dev/null 2>&1 &"
        )
        self.pids: set[int] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def pid(self) -> int:
        return int(self.pidfile.read_text())

    def start(self) -> None:
        subprocess.run(["/bin/sh", "-c", self.restart], check=True, timeout=10)

    async def wait_ready(self, not_pid: int | None = None) -> int:
        for _ in range(200):
            if self.pidfile.exists() and self.pid() != not_pid:
                self.pids.add(self.pid())
                if await answers(self.url):
                    return self.pid()
            await asyncio.sleep(0.05)
        raise AssertionError("the server did not start")

    def settings(self, **extra: object) -> dict[str, object]:
        entry = {"pidfile": str(self.pidfile), "restart": self.restart, **extra}
        return {"agents": {"orders-1": entry}}

    def stop(self) -> None:
        if self.pidfile.exists():
            self.pids.add(self.pid())
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)


async def answers(url: str, timeout_s: float = 2.0) -> bool:
    """True on a 200, False when refused; a timeout propagates (it means something else)."""
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s)) as answer,
        ):
            return answer.status == 200 and await answer.text() == "ok"
    except aiohttp.ClientConnectorError:
        return False


@pytest_asyncio.fixture
async def server(tmp_path):
    srv = Server(tmp_path)
    srv.start()
    try:
        await srv.wait_ready()
        yield srv
    finally:
        srv.stop()


def fault(action: str) -> Fault:
    return Fault(id=f"t/{action}", driver="signal", action=action, agent=AGENT)


@pytest.mark.asyncio
async def test_hang_stops_answers_and_a_new_driver_continues_the_process(server):
    await make_driver("signal", server.settings()).inject(fault("hang"))
    with pytest.raises(asyncio.TimeoutError):
        await answers(server.url, timeout_s=0.5)
    revert = make_driver("signal", server.settings())  # a new process: settings and fault only
    await revert.revert(fault("hang"))
    await revert.revert(fault("hang"))  # idempotent
    assert await answers(server.url)
    assert server.starts.read_text().count("start") == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("action", ["kill", "term"])
async def test_kill_and_term_stop_it_and_revert_restarts_it_once(server, action):
    old = server.pid()
    driver = make_driver("signal", server.settings())
    await driver.inject(fault(action))
    for _ in range(100):
        if not alive(old):
            break
        await asyncio.sleep(0.02)
    assert not await answers(server.url)  # refused

    await make_driver("signal", server.settings()).revert(fault(action))
    new = await server.wait_ready(not_pid=old)
    assert new != old
    # A second revert (recovery after a crash) finds it running and starts nothing.
    await make_driver("signal", server.settings(exit_wait_s=0.2)).revert(fault(action))
    await asyncio.sleep(0.2)
    assert server.starts.read_text().count("start") == 2
    assert server.pid() == new and await answers(server.url)


@pytest.mark.asyncio
async def test_a_failing_restart_is_a_one_line_error(server):
    driver = make_driver(
        "signal",
        {
            "agents": {
                AGENT: {"pidfile": str(server.pidfile), "restart": "echo no unit >&2; exit 5"}
            }
        },
    )
    await driver.inject(fault("kill"))
    with pytest.raises(DriverError) as caught:
        await driver.revert(fault("kill"))
    assert str(caught.value) == (f"signal: revert kill on {AGENT}: restart: exited 5: no unit")


@pytest.mark.asyncio
async def test_a_restart_that_hangs_is_killed_at_its_timeout(server):
    driver = make_driver(
        "signal",
        {
            "agents": {
                "orders-1": {
                    "pidfile": str(server.pidfile),
                    "restart": "sleep 20",
                    "restart_timeout_s": 0.3,
                }
            }
        },
    )
    await driver.inject(fault("kill"))
    started = time.monotonic()
    with pytest.raises(DriverError, match=r"restart: timed out after 0\.3 s"):
        await driver.revert(fault("kill"))
    assert time.monotonic() - started < 3


@pytest.mark.asyncio
async def test_pid_1_and_our_own_pid_are_refused(tmp_path):
    pidfile = tmp_path / "x.pid"
    driver = make_driver("signal", {"agents": {"orders-1": {"pidfile": str(pidfile)}}})
    for pid, reason in [
        (1, "1 is not allowed; expected a process id above 1"),
        (os.getpid(), f"{os.getpid()} is this process"),
    ]:
        pidfile.write_text(f"{pid}\n")
        with pytest.raises(DriverError) as caught:
            await driver.inject(fault("hang"))
        assert str(caught.value).endswith(
            f"pid from {pidfile}: {reason}; expected an agent's process" if pid != 1 else reason
        )
    assert alive(os.getpid())  # and we were not stopped
    for pid in (0, 1, -5, os.getpid()):
        with pytest.raises(ExperimentError, match=r"drivers\.signal\.agents\.a\.pid: "):
            make_driver("signal", {"agents": {"a": {"pid": pid}}})


@pytest.mark.asyncio
async def test_missing_pidfile_and_dead_process(tmp_path):
    pidfile = tmp_path / "gone.pid"
    driver = make_driver("signal", {"agents": {"orders-1": {"pidfile": str(pidfile)}}})
    with pytest.raises(DriverError, match=r"^signal: hang on .*: pidfile .* does not exist$"):
        await driver.inject(fault("hang"))
    await driver.revert(fault("hang"))  # nothing to continue: not an error
    pidfile.write_text("not a pid")
    with pytest.raises(DriverError, match="does not hold a process id"):
        await driver.inject(fault("hang"))
    proc = await asyncio.create_subprocess_exec("true")
    await proc.wait()
    pidfile.write_text(str(proc.pid))  # reaped: that pid is free now
    with pytest.raises(DriverError, match=rf"process {proc.pid} is not running"):
        await driver.inject(fault("hang"))


def test_describe():
    driver = make_driver(
        "signal", {"agents": {"orders-1": {"pidfile": "/run/o.pid", "restart": "true"}}}
    )
    assert driver.describe(fault("kill")) == (
        f"kill {AGENT}: SIGKILL to pid from /run/o.pid, restart on revert (signal)"
    )
    assert driver.describe(fault("hang")).startswith(f"hang {AGENT}: SIGSTOP to pid from")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "drivers.signal.agents: missing or empty"),
        ({"agents": {"a": {}}}, "drivers.signal.agents.a: expected exactly one of pid and pidfile"),
        (
            {"agents": {"a": {"pid": 5, "pidfile": "x"}}},
            "drivers.signal.agents.a: expected exactly",
        ),
        (
            {"agents": {"a": {"pidfile": "x", "restart": ""}}},
            "drivers.signal.agents.a.restart: expected a shell command",
        ),
        (
            {"agents": {"a": {"pidfile": "x", "restart_timeout_s": "1m"}}},
            "drivers.signal.agents.a.restart_timeout_s: '1m' is not valid",
        ),
        (
            {"agents": {"a": {"pidfile": "x", "signal": 9}}},
            "drivers.signal.agents.a.signal: unknown field",
        ),
        (
            {"agents": {"a": {"pidfile": "x"}}, "env": "HOME"},
            "drivers.signal.env: expected a list of environment variable names",
        ),
    ],
)
def test_bad_settings(settings, message):
    with pytest.raises(ExperimentError) as caught:
        make_driver("signal", settings)
    assert str(caught.value).startswith(message)


def test_bad_faults():
    driver = make_driver("signal", {"agents": {"orders-1": {"pid": 4242}, "b": {"pidfile": "p"}}})
    with pytest.raises(ExperimentError, match="needs pidfile and restart"):
        driver.check_fault(fault("term"))
    with pytest.raises(ExperimentError, match="no action 'stop'"):
        driver.check_fault(Fault("f", "signal", "stop", AGENT))
    with pytest.raises(ExperimentError, match="no entry for 'test/orders/c'"):
        driver.check_fault(Fault("f", "signal", "hang", "test/orders/c"))
    with pytest.raises(ExperimentError, match="signal faults take no params"):
        driver.check_fault(Fault("f", "signal", "hang", AGENT, {"signal": 9}))
