"""Run-time conditions of a virtual agent and the TTL bookkeeping that reverts them.

The same field names are used in the fleet file (starting conditions) and in the control
API (``PATCH`` bodies), so one model validates both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

CertState = Literal["valid", "expired", "not_yet_valid", "wrong_host"]
PlainPort = Literal["closed", "serve", "redirect"]
MAX_TTL_S = 7 * 86400
# The security audit's check classes; each can be made insecure on its own (docs/fleetsim.md).
AuditClass = Literal["auth", "ip", "methods", "rate", "headers", "input"]
AUDIT_CLASSES: tuple[str, ...] = ("auth", "ip", "methods", "rate", "headers", "input")


def _class_set(value: Any) -> Any:
    # JSON gives a list; keep a sorted tuple without repeats so conditions stay hashable.
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(sorted(set(value), key=lambda v: (v not in AUDIT_CLASSES, v)))
    return value


class Conditions(BaseModel):
    """Everything the control API can change on one agent."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    paused: bool = False  # status 503, API calls 503: a controlled drain
    stopped: bool = False  # listener closed, open connections reset
    hang: bool = False  # connections accepted, requests never answered
    slow_ms: int = Field(default=0, ge=0, le=600_000)  # added latency per request
    error_rate: float = Field(default=0.0, ge=0.0, le=1.0)  # fraction of API calls -> 500
    cert: CertState = "valid"
    legacy_tls: bool = False  # accept TLS 1.0/1.1 too
    plain_on_tls_port: bool = False  # answer plain HTTP on the TLS port
    plain_port: PlainPort = "closed"  # the agent's extra plain-HTTP port
    # Audit classes this agent (and its group's gateway) fails on purpose; empty: secure.
    audit_insecure: Annotated[tuple[AuditClass, ...], BeforeValidator(_class_set)] = ()


FIELDS = tuple(Conditions.model_fields)


class PatchRequest(Conditions):
    """A control API change: any subset of the fields, plus an optional TTL."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    ttl_s: float | None = Field(default=None, gt=0, le=MAX_TTL_S)


def parse_patch(body: Any) -> tuple[dict[str, Any], float | None]:
    """Validate a PATCH body: (changed fields, ttl) or ValueError with a one-line reason."""
    if not isinstance(body, dict) or not body:
        raise ValueError("body must be a non-empty JSON object of condition fields")
    try:
        request = PatchRequest.model_validate(_lax_numbers(body))
    except ValidationError as exc:
        raise ValueError(one_line(exc)) from None
    changes = {name: getattr(request, name) for name in request.model_fields_set if name in FIELDS}
    if not changes:
        raise ValueError("body names no condition field (only ttl_s)")
    return changes, request.ttl_s


def _lax_numbers(body: dict[str, Any]) -> dict[str, Any]:
    # JSON has one number type: accept 1 for error_rate and 2.0 for slow_ms, nothing looser.
    out = dict(body)
    if isinstance(out.get("error_rate"), int) and not isinstance(out["error_rate"], bool):
        out["error_rate"] = float(out["error_rate"])
    if isinstance(out.get("ttl_s"), int) and not isinstance(out["ttl_s"], bool):
        out["ttl_s"] = float(out["ttl_s"])
    slow = out.get("slow_ms")
    if isinstance(slow, float) and slow.is_integer():
        out["slow_ms"] = int(slow)
    return out


def one_line(exc: ValidationError) -> str:
    """The first error of a pydantic ValidationError as ``field: message``."""
    err = exc.errors()[0]
    where = ".".join(str(part) for part in err["loc"]) or "body"
    if err["type"] == "extra_forbidden":
        return f"{where}: unknown field"
    return f"{where}: {err['msg']}"


class ConditionState:
    """The current conditions of one agent, with per-field reverts after a TTL.

    ``on_change(old, new)`` is called after every change so the agent can apply it
    (close a listener, swap a certificate...).
    """

    def __init__(self, start: Conditions, on_change: Callable[[Conditions, Conditions], None]):
        self.start = start
        self.current = start
        self._on_change = on_change
        # field -> (value to revert to, timer)
        self._reverts: dict[str, tuple[Any, asyncio.TimerHandle]] = {}

    def apply(self, changes: dict[str, Any], ttl_s: float | None = None) -> None:
        loop = asyncio.get_running_loop()
        for name in changes:
            pending = self._reverts.pop(name, None)
            if pending:
                pending[1].cancel()
            if ttl_s is not None:
                # A chain of temporary changes reverts to the value before the first one.
                target = pending[0] if pending else getattr(self.current, name)
                timer = loop.call_later(ttl_s, self._revert, name)
                self._reverts[name] = (target, timer)
        self._set(self.current.model_copy(update=changes))

    def reset(self) -> None:
        """Back to the starting conditions; pending reverts are dropped."""
        for _, timer in self._reverts.values():
            timer.cancel()
        self._reverts.clear()
        self._set(self.start)

    def pending(self) -> dict[str, Any]:
        """Field -> value it will revert to, for fields with a running TTL."""
        return {name: target for name, (target, _) in self._reverts.items()}

    def _revert(self, name: str) -> None:
        target, _ = self._reverts.pop(name)
        self._set(self.current.model_copy(update={name: target}))

    def _set(self, new: Conditions) -> None:
        old, self.current = self.current, new
        if old != new:
            self._on_change(old, new)
