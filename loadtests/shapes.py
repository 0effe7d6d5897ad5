"""Load shapes by name: steady, step, spike and soak, each with a few parameters.

A shape is written ``NAME[:KEY=VALUE,...]``, for example ``spike:users=10,peak=100,at=20s``.
``users_at(t)`` says how many users should run ``t`` seconds into the test and how fast to
get there (users started or stopped per second), or ``None`` once the test is over. This
module is pure (no Locust, no gevent) so the command line can check a shape before it starts
Locust; ``loadtests.locustfile`` turns it into a Locust ``LoadTestShape``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from loadtests.errors import LoadConfigError

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
MAX_DURATION_S = 7 * 86400.0
MAX_USERS = 100_000


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``5m``, ``1.5h`` or ``500ms`` as seconds."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise LoadConfigError(f"{text!r} is not a duration; expected e.g. 30s, 5m, 1h or 500ms")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def format_duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


def _users(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= MAX_USERS:
        raise LoadConfigError(f"{text!r} is not a user count; expected 0 to {MAX_USERS}")
    return int(text)


def _seconds(text: str) -> float:
    value = parse_duration(text)
    if value > MAX_DURATION_S:
        raise LoadConfigError(f"{text!r} is longer than a week")
    return value


# How each parameter is read, by the type written on the dataclass field.
_PARSERS: dict[str, Callable[[str], Any]] = {"int": _users, "float": _seconds}

Tick = tuple[int, float] | None


@dataclass(frozen=True)
class Shape:
    """Base of the shapes: ``duration`` ends the test; subclasses add their own parameters."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    duration: float = 60.0

    def users_at(self, t: float) -> Tick:
        raise NotImplementedError

    @property
    def peak_users(self) -> int:
        raise NotImplementedError

    def spec(self) -> str:
        """The shape written back as ``NAME:KEY=VALUE,...`` (every parameter, for the record)."""
        return f"{self.name}:{self.parameters()}"

    def parameters(self) -> str:
        return ",".join(f"{f.name}={_show(getattr(self, f.name), f.type)}" for f in fields(self))

    def _check(self) -> None:
        if self.duration <= 0:
            raise LoadConfigError(f"shape {self.name}: duration must be more than 0")


def _show(value: Any, kind: Any) -> str:
    return str(value) if kind == "int" else format_duration(value)


def _rate(users: int, seconds: float) -> float:
    """Users per second to reach ``users`` in ``seconds`` (at least 1, at once if 0 s)."""
    return float(max(1, users)) if seconds <= 0 else max(1.0, users / seconds)


@dataclass(frozen=True)
class Steady(Shape):
    name: ClassVar[str] = "steady"
    summary: ClassVar[str] = "ramp up to USERS in RAMP, hold until DURATION"
    users: int = 10
    ramp: float = 5.0

    def users_at(self, t: float) -> Tick:
        return None if t >= self.duration else (self.users, _rate(self.users, self.ramp))

    @property
    def peak_users(self) -> int:
        return self.users


@dataclass(frozen=True)
class Step(Shape):
    name: ClassVar[str] = "step"
    summary: ClassVar[str] = "START users, STEP more EVERY seconds, up to USERS"
    users: int = 50
    start: int = 10
    step: int = 10
    every: float = 10.0

    def users_at(self, t: float) -> Tick:
        if t >= self.duration:
            return None
        count = min(self.users, self.start + self.step * math.floor(t / self.every))
        return count, float(max(1, self.step, self.start))

    @property
    def peak_users(self) -> int:
        return self.users

    def _check(self) -> None:
        super()._check()
        if self.every <= 0:
            raise LoadConfigError("shape step: every must be more than 0")


@dataclass(frozen=True)
class Spike(Shape):
    name: ClassVar[str] = "spike"
    summary: ClassVar[str] = "USERS, then a huge peak of PEAK users AT for HOLD, then USERS again"
    users: int = 10
    peak: int = 100
    at: float = 20.0
    hold: float = 10.0
    rise: float = 2.0

    def users_at(self, t: float) -> Tick:
        if t >= self.duration:
            return None
        rate = _rate(abs(self.peak - self.users), self.rise)
        if self.at <= t < self.at + self.hold:
            return self.peak, rate
        return self.users, rate

    @property
    def peak_users(self) -> int:
        return max(self.users, self.peak)


@dataclass(frozen=True)
class Soak(Steady):
    """A steady load with soak defaults: the same curve, held long enough to show leaks."""

    name: ClassVar[str] = "soak"
    summary: ClassVar[str] = "a slow ramp to USERS, held for a long DURATION (leaks, drift)"
    duration: float = 3600.0
    users: int = 20
    ramp: float = 60.0


SHAPES: dict[str, type[Shape]] = {s.name: s for s in (Steady, Step, Spike, Soak)}


def parse_shape(text: str, **overrides: str) -> Shape:
    """``NAME[:KEY=VALUE,...]`` as a shape; ``overrides`` fill parameters the text leaves out."""
    name, _, rest = text.strip().partition(":")
    cls = SHAPES.get(name)
    if cls is None:
        raise LoadConfigError(f"unknown shape {name!r}; expected one of {', '.join(SHAPES)}")
    known = {f.name: f.type for f in fields(cls)}
    given: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not value.strip():
            raise LoadConfigError(f"shape {name}: {item!r} is not KEY=VALUE")
        if key not in known:
            raise LoadConfigError(
                f"shape {name}: unknown parameter {key!r}; expected {', '.join(known)}"
            )
        if key in given:
            raise LoadConfigError(f"shape {name}: {key} is given twice")
        given[key] = value.strip()
    for key, value in overrides.items():
        if key in known and key not in given:
            given[key] = value
    values = {}
    for key, value in given.items():
        try:
            values[key] = _PARSERS[str(known[key])](value)
        except LoadConfigError as exc:
            raise LoadConfigError(f"shape {name}: {key}: {exc}") from None
    shape = cls(**values)
    shape._check()
    return shape


def describe_shapes() -> str:
    """One line per shape with its parameters and defaults, for --help."""
    lines = []
    for cls in SHAPES.values():
        params = cls().parameters().replace(",", ", ")
        lines.append(f"  {cls.name:7} {cls.summary}\n          ({params})")
    return "\n".join(lines)
