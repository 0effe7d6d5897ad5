"""The ``signal`` driver: faults on local agent processes, found by pid or pidfile.

Settings (``drivers.signal``)::

    agents:
      orders-1:                       # agent name or ENV/GROUP/AGENT
        pidfile: /run/frends/orders-1.pid   # or pid: 4242 (hang only)
        restart: "systemctl start frends-orders-1"   # run by revert of term and kill
        restart_timeout_s: 30
        exit_wait_s: 10               # how long revert waits for a terminated process to go
    env: [NAME, ...]                  # variables passed to the restart command
    shell: /bin/sh

Actions: ``hang`` (SIGSTOP; revert SIGCONT), ``term`` (SIGTERM) and ``kill`` (SIGKILL),
whose revert runs the restart command unless the process from the pidfile is running
again. Nothing is remembered between inject and revert: the pid is read again from the
settings, so a new process can revert after a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from chaos.drivers import agent_settings, split_agent
from chaos.drivers.command import command_env, run_bounded
from chaos.drivers.settings import agent_table, check_env_names, check_keys, check_seconds
from chaos.errors import DriverError, ExperimentError
from chaos.faults import Driver, Fault

SIGNALS = {"hang": signal.SIGSTOP, "term": signal.SIGTERM, "kill": signal.SIGKILL}
AGENT_FIELDS = ("pid", "pidfile", "restart", "restart_timeout_s", "exit_wait_s")


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie is not: it only waits to be reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (not Linux): trust kill(0)
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


class SignalDriver(Driver):
    """Send signals to agent processes on this machine."""

    name: ClassVar[str] = "signal"
    actions: ClassVar[frozenset[str]] = frozenset(SIGNALS)

    def check_settings(self) -> None:
        s = check_keys(self.settings, ("agents", "env", "shell"), "drivers.signal")
        self.env_names = check_env_names(s.get("env", []), "drivers.signal.env")
        shell = s.get("shell", "/bin/sh")
        if not isinstance(shell, str) or not shell.strip():
            raise ExperimentError("drivers.signal.shell: expected a shell program, e.g. /bin/sh")
        self.shell = shell
        agents = agent_table(s, "drivers.signal", "{AGENT: {pidfile: PATH}}")
        for key, entry in agents.items():
            where = f"drivers.signal.agents.{key}"
            entry = check_keys(entry, AGENT_FIELDS, where)
            if ("pid" in entry) == ("pidfile" in entry):
                raise ExperimentError(f"{where}: expected exactly one of pid and pidfile")
            if "pid" in entry:
                self._check_pid(entry["pid"], f"{where}.pid", ExperimentError)
            elif not isinstance(entry["pidfile"], str) or not entry["pidfile"]:
                raise ExperimentError(f"{where}.pidfile: expected a file path")
            restart = entry.get("restart")
            if restart is not None and (not isinstance(restart, str) or not restart.strip()):
                raise ExperimentError(f"{where}.restart: expected a shell command")
            check_seconds(entry.get("restart_timeout_s", 30), f"{where}.restart_timeout_s")
            wait = entry.get("exit_wait_s", 10)
            if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 <= wait <= 600:
                raise ExperimentError(f"{where}.exit_wait_s: expected seconds in [0, 600]")
        self.agents: Mapping[str, Mapping[str, Any]] = agents

    @staticmethod
    def _check_pid(pid: Any, where: str, error: type[Exception]) -> int:
        if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 1:
            # 0 and negative pids signal whole process groups; 1 is init.
            raise error(f"{where}: {pid!r} is not allowed; expected a process id above 1")
        if pid == os.getpid():
            raise error(f"{where}: {pid} is this process; expected an agent's process")
        return pid

    def check_fault(self, fault: Fault) -> None:
        super().check_fault(fault)
        split_agent(fault.agent)
        entry = agent_settings(self.name, self.agents, fault.agent)
        if fault.params:
            raise ExperimentError(f"fault {fault.id}: signal faults take no params")
        if fault.action != "hang" and ("restart" not in entry or "pidfile" not in entry):
            raise ExperimentError(
                f"fault {fault.id}: {fault.action} needs pidfile and restart in "
                f"drivers.signal.agents for {fault.agent} (a restarted process has a new pid; "
                "write restart: 'true' when a supervisor restarts it)"
            )

    def _pid(self, entry: Mapping[str, Any], what: str, *, required: bool) -> int | None:
        if "pid" in entry:
            return self._check_pid(entry["pid"], what, DriverError)
        path = Path(entry["pidfile"])
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            if required:
                raise DriverError(f"{what}: pidfile {path} does not exist") from None
            return None
        except OSError as exc:
            raise DriverError(f"{what}: cannot read pidfile {path}: {exc.strerror}") from None
        if not text.isdigit():
            raise DriverError(f"{what}: pidfile {path} does not hold a process id")
        return self._check_pid(int(text), f"{what}: pid from {path}", DriverError)

    @staticmethod
    def _send(pid: int, sig: signal.Signals, what: str, *, missing_ok: bool) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            if not missing_ok:
                raise DriverError(f"{what}: process {pid} is not running") from None
        except PermissionError:
            raise DriverError(f"{what}: not permitted to signal process {pid}") from None

    async def inject(self, fault: Fault) -> None:
        self.check_fault(fault)
        what = f"signal: {fault.action} on {fault.agent}"
        entry = agent_settings(self.name, self.agents, fault.agent)
        pid = self._pid(entry, what, required=True)
        assert pid is not None
        if not alive(pid):
            raise DriverError(f"{what}: process {pid} is not running")
        self._send(pid, SIGNALS[fault.action], what, missing_ok=False)

    async def revert(self, fault: Fault) -> None:
        self.check_fault(fault)
        what = f"signal: revert {fault.action} on {fault.agent}"
        entry = agent_settings(self.name, self.agents, fault.agent)
        pid = self._pid(entry, what, required=False)
        if fault.action == "hang":
            if pid is not None:
                self._send(pid, signal.SIGCONT, what, missing_ok=True)
            return
        if pid is not None and await self._still_running(pid, float(entry.get("exit_wait_s", 10))):
            return  # restarted already (by us before a crash, or by a supervisor)
        await run_bounded(
            [self.shell, "-c", entry["restart"]],
            what=f"{what}: restart",
            timeout_s=float(entry.get("restart_timeout_s", 30)),
            env=command_env(self.env_names, "signal"),
        )

    @staticmethod
    async def _still_running(pid: int, wait_s: float) -> bool:
        # A terminated process may take a while to shut down; one that outlives the wait
        # is a running process (or one that ignored SIGTERM), and needs no restart.
        deadline = time.monotonic() + wait_s
        while alive(pid):
            if time.monotonic() >= deadline:
                return True
            await asyncio.sleep(0.05)
        return False

    def describe(self, fault: Fault) -> str:
        sig = SIGNALS.get(fault.action)
        source = "?"
        with contextlib.suppress(ExperimentError):
            entry = agent_settings(self.name, self.agents, fault.agent)
            source = f"pid {entry['pid']}" if "pid" in entry else f"pid from {entry['pidfile']}"
        then = ", restart on revert" if fault.action in ("term", "kill") else ", SIGCONT on revert"
        name = sig.name if sig else fault.action
        return f"{fault.action} {fault.agent}: {name} to {source}{then} (signal)"
