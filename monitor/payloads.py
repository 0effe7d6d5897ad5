"""Synthetic request data: placeholders in paths and JSON bodies, filled for every request.

``{uuid}``, ``{int}`` (1..1,000,000), ``{int:A-B}``, ``{seq}`` (1, 2, 3... per process),
``{hex}`` and ``{name}`` (``synthetic-`` and 6 hex digits). ``{{`` and ``}}`` are literal
braces. In a body, a string that is exactly one ``{int...}`` or ``{seq}`` placeholder becomes
a JSON number. Values are generated, never taken from real people: load tests must not carry
personal data. The monitor's API checks and the load runs fill them the same way.
"""

from __future__ import annotations

import itertools
import random
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from monitor.errors import MonitorError


class TemplateError(MonitorError):
    """A placeholder that cannot be used; the message names where and what is expected."""


_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([a-z]+)(?::(\d+)-(\d+))?\}|[{}]")
_counter = itertools.count(1)

Generator = Callable[[random.Random], str | int]


def _int_between(low: int, high: int) -> Generator:
    return lambda rng: rng.randint(low, high)


_SIMPLE: dict[str, Generator] = {
    "uuid": lambda rng: str(uuid.UUID(int=rng.getrandbits(128), version=4)),
    "int": _int_between(1, 1_000_000),
    "seq": lambda _rng: next(_counter),
    "hex": lambda rng: f"{rng.getrandbits(32):08x}",
    "name": lambda rng: f"synthetic-{rng.getrandbits(24):06x}",
}


@dataclass(frozen=True)
class Template:
    """A string with placeholders, parsed once; ``render`` fills it."""

    parts: tuple[str | Generator, ...]

    @property
    def is_constant(self) -> bool:
        return all(isinstance(p, str) for p in self.parts)

    def render(self, rng: random.Random) -> str:
        return "".join(p if isinstance(p, str) else str(p(rng)) for p in self.parts)

    def value(self, rng: random.Random) -> str | int:
        """A lone number placeholder gives a number; anything else a string."""
        if len(self.parts) == 1 and not isinstance(self.parts[0], str):
            return self.parts[0](rng)
        return self.render(rng)


def parse_template(text: str, where: str) -> Template:
    parts: list[str | Generator] = []
    literal = []
    pos = 0
    for match in _PLACEHOLDER.finditer(text):
        literal.append(text[pos : match.start()])
        pos = match.end()
        token = match.group(0)
        if token in ("{{", "}}"):
            literal.append(token[0])
            continue
        name = match.group(1)
        if name is None:
            raise TemplateError(f"{where}: unmatched {token!r}; write {token * 2} for a brace")
        if match.group(2) is not None:
            low, high = int(match.group(2)), int(match.group(3))
            if name != "int" or low > high:
                raise TemplateError(f"{where}: {token} expected {{int:LOW-HIGH}}, LOW <= HIGH")
            generator = _int_between(low, high)
        elif name in _SIMPLE:
            generator = _SIMPLE[name]
        else:
            raise TemplateError(
                f"{where}: unknown placeholder {token}; expected one of "
                "{uuid} {int} {int:A-B} {seq} {hex} {name}"
            )
        if "".join(literal):
            parts.append("".join(literal))
        literal = []
        parts.append(generator)
    literal.append(text[pos:])
    if "".join(literal):
        parts.append("".join(literal))
    return Template(tuple(parts))


@dataclass(frozen=True)
class BodyTemplate:
    """A JSON body whose strings (at any depth) may hold placeholders."""

    shape: Any

    @property
    def is_constant(self) -> bool:
        return not _has_template(self.shape)

    def render(self, rng: random.Random) -> Any:
        return _render(self.shape, rng)


def parse_body(body: Any, where: str) -> BodyTemplate:
    def walk(node: Any, path: str) -> Any:
        if isinstance(node, str):
            template = parse_template(node, path)
            return "".join(map(str, template.parts)) if template.is_constant else template
        if isinstance(node, dict):
            return {key: walk(value, f"{path}.{key}") for key, value in node.items()}
        if isinstance(node, list):
            return [walk(value, f"{path}[{i}]") for i, value in enumerate(node)]
        return node

    return BodyTemplate(walk(body, where))


def _render(node: Any, rng: random.Random) -> Any:
    if isinstance(node, Template):
        return node.value(rng)
    if isinstance(node, dict):
        return {key: _render(value, rng) for key, value in node.items()}
    if isinstance(node, list):
        return [_render(value, rng) for value in node]
    return node


def _has_template(node: Any) -> bool:
    if isinstance(node, Template):
        return True
    if isinstance(node, dict):
        return any(_has_template(value) for value in node.values())
    if isinstance(node, list):
        return any(_has_template(value) for value in node)
    return False
