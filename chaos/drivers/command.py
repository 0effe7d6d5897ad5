"""The ``command`` driver: templated shell commands for real fleets (ssh, systemctl, kubectl...).

Settings (``drivers.command``)::

    inject: "ssh {host} sudo systemctl stop frends-agent"   # default templates, any action
    revert: "ssh {host} sudo systemctl start frends-agent"
    timeout_s: 30                 # per command; on timeout its whole process group is killed
    shell: /bin/sh                # runs TEMPLATE as `shell -c TEMPLATE`
    env: [SSH_AUTH_SOCK]          # variables passed through (besides PATH, HOME, ...)
    agents: {orders-1: {host: orders-1.example.net, port: 443}}
    actions:                      # per-action templates (and timeout_s) override the defaults
      stop: {inject: "...", revert: "..."}

Placeholders: {agent} {env} {group} {name} {host} {port} {action} {params.X}; every value
is shell-quoted, so an agent name or a parameter can never become shell syntax.

``run_bounded`` (one command, its own process group, a hard timeout, a one-line error) is
shared with the ``signal`` and ``netns`` drivers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import string
import tempfile
from collections.abc import Mapping, Sequence
from typing import IO, Any, ClassVar

from chaos.drivers import agent_settings, split_agent
from chaos.drivers.settings import NAME_RE, check_env_names, check_keys, check_seconds
from chaos.errors import DriverError, ExperimentError
from chaos.faults import Driver, Fault

# Always passed through: what a shell, ssh or kubectl needs to find its tools and config.
BASE_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "SSH_AUTH_SOCK")
FIELDS = ("agent", "env", "group", "name", "host", "port", "action")
TAIL_CHARS = 200


def _last_line(handle: IO[bytes]) -> str:
    handle.seek(0)
    lines = [ln.strip() for ln in handle.read().decode(errors="replace").splitlines()]
    last = next((ln for ln in reversed(lines) if ln), "")
    return "".join(ch if ch.isprintable() else "?" for ch in last)[:TAIL_CHARS]


def _kill_group(pid: int) -> None:
    # start_new_session made the child the leader of its own group: pgid == pid.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def run_bounded(
    argv: Sequence[str],
    *,
    what: str,
    timeout_s: float,
    env: Mapping[str, str] | None = None,
) -> None:
    """Run ``argv`` to completion within ``timeout_s``, or raise ``DriverError`` naming ``what``.

    Output goes to temporary files, not pipes: a command that leaves a daemon behind (a
    restart command) must not keep us waiting for the daemon to close our pipe.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=None if env is None else dict(env),
                start_new_session=True,
            )
        except OSError as exc:
            raise DriverError(f"{what}: cannot start {argv[0]}: {exc.strerror}") from None
        try:
            code = await asyncio.wait_for(proc.wait(), timeout_s)
        except TimeoutError:
            _kill_group(proc.pid)
            await proc.wait()
            raise DriverError(
                f"{what}: timed out after {timeout_s:g} s; its process group was killed"
            ) from None
        except asyncio.CancelledError:
            _kill_group(proc.pid)
            raise
        if code != 0:
            tail = _last_line(err) or _last_line(out)
            how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited {code}"
            raise DriverError(f"{what}: {how}" + (f": {tail}" if tail else ""))


def command_env(names: Sequence[str], driver: str) -> dict[str, str]:
    """The environment for a command: the basics plus the named variables (which must be set)."""
    env = {name: os.environ[name] for name in BASE_ENV if name in os.environ}
    for name in names:
        if name not in os.environ:
            raise DriverError(f"{driver}: environment variable {name} is not set")
        env[name] = os.environ[name]
    return env


def placeholders(template: str, where: str) -> list[str]:
    """The placeholders of a template, checked: known names or params.X, nothing else."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ExperimentError(f"{where}: {exc}; expected {{name}} placeholders") from None
    fields = []
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        known = field in FIELDS or (field.startswith("params.") and NAME_RE.match(field[7:]))
        if not known or spec or conversion:
            raise ExperimentError(
                f"{where}: unknown placeholder {{{field}}}; expected one of "
                + " ".join(f"{{{f}}}" for f in FIELDS)
                + " {params.X}"
            )
        fields.append(field)
    return fields


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render(template: str, values: Mapping[str, Any]) -> str:
    """Fill a checked template; every substituted value is shell-quoted."""
    out = []
    for literal, field, _, _ in string.Formatter().parse(template):
        out.append(literal)
        if field is not None:
            out.append(shlex.quote(_text(values[field])))
    return "".join(out)


class CommandDriver(Driver):
    """Inject and revert by running the configured shell commands."""

    name: ClassVar[str] = "command"
    actions: ClassVar[frozenset[str]] = frozenset()  # any, when default templates exist

    def check_settings(self) -> None:
        s = check_keys(
            self.settings,
            ("inject", "revert", "timeout_s", "shell", "env", "agents", "actions"),
            "drivers.command",
        )
        self.timeout_s = check_seconds(s.get("timeout_s", 30), "drivers.command.timeout_s")
        shell = s.get("shell", "/bin/sh")
        if not isinstance(shell, str) or not shell.strip():
            raise ExperimentError("drivers.command.shell: expected a shell program, e.g. /bin/sh")
        self.shell = shell
        self.env_names = check_env_names(s.get("env", []), "drivers.command.env")
        self.templates: dict[str, tuple[str, str, float]] = {}
        self.default: tuple[str, str, float] | None = None
        if "inject" in s or "revert" in s:
            self.default = self._pair(s, "drivers.command", self.timeout_s)
        actions = s.get("actions", {})
        if not isinstance(actions, Mapping):
            raise ExperimentError("drivers.command.actions: expected a mapping of action names")
        for action, spec in actions.items():
            where = f"drivers.command.actions.{action}"
            if not isinstance(action, str) or not NAME_RE.match(action):
                raise ExperimentError(f"{where}: expected an action name (letters, digits, _)")
            spec = check_keys(spec, ("inject", "revert", "timeout_s"), where)
            timeout_s = check_seconds(spec.get("timeout_s", self.timeout_s), f"{where}.timeout_s")
            self.templates[action] = self._pair(spec, where, timeout_s)
        if self.default is None and not self.templates:
            raise ExperimentError(
                "drivers.command: no commands; expected inject and revert templates "
                "or actions: {NAME: {inject, revert}}"
            )
        agents = s.get("agents", {})
        if not isinstance(agents, Mapping):
            raise ExperimentError("drivers.command.agents: expected a mapping of agents")
        for key, entry in agents.items():
            entry = check_keys(entry, ("host", "port"), f"drivers.command.agents.{key}")
            for field, value in entry.items():
                if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
                    raise ExperimentError(
                        f"drivers.command.agents.{key}.{field}: expected a string or number"
                    )
        self.agents: Mapping[str, Mapping[str, Any]] = agents

    @staticmethod
    def _pair(spec: Mapping[str, Any], where: str, timeout_s: float) -> tuple[str, str, float]:
        pair = []
        for step in ("inject", "revert"):
            template = spec.get(step)
            if not isinstance(template, str) or not template.strip():
                raise ExperimentError(f"{where}.{step}: expected a command template")
            placeholders(template, f"{where}.{step}")
            pair.append(template)
        return pair[0], pair[1], timeout_s

    def _commands(self, action: str) -> tuple[str, str, float]:
        found = self.templates.get(action, self.default)
        if found is None:
            raise ExperimentError(
                f"driver command: no action {action!r}; expected one of "
                + ", ".join(sorted(self.templates))
            )
        return found

    def _values(self, fault: Fault) -> dict[str, Any]:
        env, group, name = split_agent(fault.agent)
        values: dict[str, Any] = {
            "agent": fault.agent,
            "env": env,
            "group": group,
            "name": name,
            "action": fault.action,
        }
        with contextlib.suppress(ExperimentError):
            values.update(agent_settings("command", self.agents, fault.agent))
        values.update({f"params.{k}": v for k, v in fault.params.items()})
        return values

    def check_fault(self, fault: Fault) -> None:
        inject, revert, _ = self._commands(fault.action)
        for key, value in fault.params.items():
            if not NAME_RE.match(key) or not isinstance(value, str | int | float | bool):
                raise ExperimentError(
                    f"fault {fault.id}: params.{key}: expected a name with a scalar value"
                )
        values = self._values(fault)
        for step, template in (("inject", inject), ("revert", revert)):
            for field in placeholders(template, f"drivers.command {step}"):
                if field not in values:
                    source = "params" if field.startswith("params.") else "drivers.command.agents"
                    raise ExperimentError(
                        f"fault {fault.id}: the {step} command uses {{{field}}} but "
                        f"{source} has none for {fault.agent}"
                    )

    async def _run(self, step: str, fault: Fault) -> None:
        self.check_fault(fault)
        inject, revert, timeout_s = self._commands(fault.action)
        script = render(inject if step == "inject" else revert, self._values(fault))
        await run_bounded(
            [self.shell, "-c", script],
            what=f"command: {step} {fault.action} on {fault.agent}",
            timeout_s=timeout_s,
            env=command_env(self.env_names, "command"),
        )

    async def inject(self, fault: Fault) -> None:
        await self._run("inject", fault)

    async def revert(self, fault: Fault) -> None:
        await self._run("revert", fault)

    def describe(self, fault: Fault) -> str:
        try:
            script = render(self._commands(fault.action)[0], self._values(fault))
        except (ExperimentError, KeyError):
            script = "?"
        if len(script) > 80:
            script = script[:77] + "..."
        return f"{fault.action} {fault.agent} (command: {script})"
