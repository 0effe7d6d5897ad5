"""The ``fleetsim`` driver: faults through a simulated fleet's control API.

Settings (``drivers.fleetsim``), one of::

    control_url: http://127.0.0.1:8700    # with
    token_env: FLEETSIM_CONTROL_TOKEN     # the variable holding the bearer token

    fleet_json: demo-fleet/fleet.json     # a running fleet's fleet.json: its control_url,
                                          # and the token read from its token_file
    timeout_s: 10                         # per control call (optional)

Each action sets condition fields on one agent (``PATCH .../conditions``, with ``ttl_s``
when the fault has one as a safety net); revert sets the same fields back to their
defaults, so two faults on one agent that touch different fields revert independently.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import aiohttp

from chaos.drivers import split_agent
from chaos.drivers.settings import NAME_RE, check_keys, check_seconds
from chaos.errors import DriverError, ExperimentError
from chaos.faults import Driver, Fault

MAX_TTL_S = 7 * 86400  # the control API's limit
CERT_STATES = ("expired", "not_yet_valid", "wrong_host")
# action -> (condition field, value when reverted)
FIELDS: dict[str, tuple[str, Any]] = {
    "pause": ("paused", False),
    "stop": ("stopped", False),
    "hang": ("hang", False),
    "slow": ("slow_ms", 0),
    "errors": ("error_rate", 0.0),
    "cert": ("cert", "valid"),
    "legacy_tls": ("legacy_tls", False),
}
PARAMS = {"slow": "ms", "errors": "rate", "cert": "state"}


def _one_line(text: str, limit: int = 200) -> str:
    return " ".join(text.split())[:limit]


class FleetsimDriver(Driver):
    """Change a fleetsim agent's conditions."""

    name: ClassVar[str] = "fleetsim"
    actions: ClassVar[frozenset[str]] = frozenset(FIELDS)

    _session: aiohttp.ClientSession | None = None

    def check_settings(self) -> None:
        s = check_keys(
            self.settings,
            ("control_url", "token_env", "fleet_json", "timeout_s"),
            "drivers.fleetsim",
        )
        self.timeout_s = check_seconds(
            s.get("timeout_s", 10), "drivers.fleetsim.timeout_s", high=300
        )
        if "fleet_json" in s:
            if "control_url" in s or "token_env" in s:
                raise ExperimentError(
                    "drivers.fleetsim.fleet_json: given with control_url/token_env; "
                    "expected either fleet_json or control_url and token_env"
                )
            if not isinstance(s["fleet_json"], str) or not s["fleet_json"]:
                raise ExperimentError("drivers.fleetsim.fleet_json: expected a file path")
            return
        url = s.get("control_url")
        if (
            not isinstance(url, str)
            or urlsplit(url).scheme not in ("http", "https")
            or not (urlsplit(url).hostname)
        ):
            raise ExperimentError(
                f"drivers.fleetsim.control_url: {url!r} is not valid; "
                "expected http://HOST:PORT (or give fleet_json)"
            )
        token_env = s.get("token_env")
        if not isinstance(token_env, str) or not NAME_RE.match(token_env):
            raise ExperimentError(
                "drivers.fleetsim.token_env: missing or not a variable name; expected the "
                "name of the environment variable holding the control token"
            )

    def _endpoint(self) -> tuple[str, str]:
        """(control_url, token), read at call time: the fleet may start after validation."""
        s = self.settings
        if "fleet_json" in s:
            path = Path(s["fleet_json"])
            try:
                info = json.loads(path.read_text())
                token = Path(info["token_file"]).read_text().strip()
                url = str(info["control_url"])
            except FileNotFoundError as exc:
                raise DriverError(
                    f"fleetsim: {exc.filename} does not exist (is the fleet running?)"
                ) from None
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise DriverError(f"fleetsim: cannot read {path}: {type(exc).__name__}") from None
            return url.rstrip("/"), token
        token = os.environ.get(s["token_env"], "")
        if not token:
            raise DriverError(f"fleetsim: environment variable {s['token_env']} is not set")
        return str(s["control_url"]).rstrip("/"), token

    def check_fault(self, fault: Fault) -> None:
        super().check_fault(fault)
        split_agent(fault.agent)
        where = f"fault {fault.id}"
        wanted = {PARAMS[fault.action]} if fault.action in PARAMS else set()
        extra = set(fault.params) - wanted
        if extra:
            raise ExperimentError(
                f"{where}: params.{sorted(extra)[0]}: unknown for {fault.action}; expected "
                + (", ".join(sorted(wanted)) or "no params")
            )
        if wanted and not set(fault.params) >= wanted:
            raise ExperimentError(f"{where}: params.{PARAMS[fault.action]}: missing")
        value = self._value(fault)
        if fault.action == "slow" and (
            isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 600_000
        ):
            raise ExperimentError(f"{where}: params.ms: {value!r}; expected 1..600000 (ms)")
        if fault.action == "errors" and (
            isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1
        ):
            raise ExperimentError(f"{where}: params.rate: {value!r}; expected (0, 1]")
        if fault.action == "cert" and value not in CERT_STATES:
            raise ExperimentError(
                f"{where}: params.state: {value!r}; expected one of {', '.join(CERT_STATES)}"
            )
        ttl = fault.ttl_s
        if ttl is not None and (
            isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 < ttl <= MAX_TTL_S
        ):
            raise ExperimentError(f"{where}: ttl_s: {ttl!r}; expected seconds in (0, {MAX_TTL_S}]")

    @staticmethod
    def _value(fault: Fault) -> Any:
        if fault.action in PARAMS:
            value = fault.params.get(PARAMS[fault.action])
            return (
                float(value)
                if fault.action == "errors"
                and isinstance(value, int)
                and (not isinstance(value, bool))
                else value
            )
        return True

    async def _patch(self, fault: Fault, body: Mapping[str, Any], step: str) -> None:
        what = f"fleetsim: {step} {fault.action} on {fault.agent}"
        await self._call("PATCH", fault.agent, body, what)

    async def reset(self, agents: Sequence[str]) -> None:
        """Every condition of these agents back to the fleet's starting state (a rollback)."""
        for agent in agents:
            await self._call("DELETE", agent, None, f"fleetsim: reset {agent}")

    async def _call(
        self, method: str, agent: str, body: Mapping[str, Any] | None, what: str
    ) -> None:
        url, token = self._endpoint()
        path = "/".join(quote(part, safe="") for part in split_agent(agent))
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s)
            )
        try:
            async with self._session.request(
                method,
                f"{url}/v1/agents/{path}/conditions",
                json=None if body is None else dict(body),
                headers={"Authorization": f"Bearer {token}"},
            ) as answer:
                text = await answer.text()
                if answer.status == 200:
                    return
        except TimeoutError:
            raise DriverError(f"{what}: no answer from {url} within {self.timeout_s:g} s") from None
        except (aiohttp.ClientError, OSError) as exc:
            reason = _one_line(str(exc)) or type(exc).__name__
            raise DriverError(f"{what}: cannot reach {url}: {reason}") from None
        try:
            detail = json.loads(text)["error"]
        except (ValueError, KeyError, TypeError):
            detail = text
        raise DriverError(f"{what}: control API answered {answer.status}: {_one_line(str(detail))}")

    async def inject(self, fault: Fault) -> None:
        self.check_fault(fault)
        field, _ = FIELDS[fault.action]
        body: dict[str, Any] = {field: self._value(fault)}
        if fault.ttl_s is not None:
            body["ttl_s"] = float(fault.ttl_s)
        await self._patch(fault, body, "inject")

    async def revert(self, fault: Fault) -> None:
        # Setting the default again also cancels a pending TTL revert of that field.
        self.check_fault(fault)
        field, default = FIELDS[fault.action]
        await self._patch(fault, {field: default}, "revert")

    def describe(self, fault: Fault) -> str:
        detail = {
            "slow": f" {fault.params.get('ms')} ms",
            "errors": f" {fault.params.get('rate')}",
            "cert": f" {fault.params.get('state')}",
        }.get(fault.action, "")
        return f"{fault.action}{detail} {fault.agent} (fleetsim)"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
