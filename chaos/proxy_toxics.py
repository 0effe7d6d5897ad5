"""The fault proxy's toxics: what each one is, and how its attributes are checked.

The names and meanings follow Toxiproxy's toxics (latency with jitter, bandwidth, timeout,
reset_peer, slicer, slow_close, each with a toxicity), with units in the attribute names.
A toxic is plain data; the proxy's connections read the route's current list of toxics
for every chunk, so adding or removing one also changes connections already open.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DIRECTIONS = ("upstream", "downstream")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

# Each type's attributes and their defaults; every value is a non-negative integer.
TOXIC_TYPES: dict[str, dict[str, int]] = {
    "latency": {"latency_ms": 0, "jitter_ms": 0},
    "bandwidth": {"rate_kbps": 0},
    "timeout": {"timeout_ms": 0},
    "reset_peer": {"timeout_ms": 0},
    "slicer": {"average_size": 0, "size_variation": 0, "delay_us": 0},
    "slow_close": {"delay_ms": 0},
}
# Attributes without a useful default: a toxic of that type must name them.
REQUIRED: dict[str, tuple[str, ...]] = {
    "latency": ("latency_ms",),
    "bandwidth": ("rate_kbps",),
    "slicer": ("average_size",),
    "slow_close": ("delay_ms",),
}
MAX_ATTRIBUTE = 10**9  # far above any useful value; keeps arithmetic and sleeps sane

# Every toxic created gets a fresh serial, so a connection's "does this toxic apply to
# me" decision is never carried over to a new toxic that reuses a deleted one's name.
_serials = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Toxic:
    name: str
    type: str
    direction: str
    toxicity: float
    attributes: Mapping[str, int]
    serial: int = field(default_factory=lambda: next(_serials), compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "direction": self.direction,
            "toxicity": self.toxicity,
            "attributes": dict(self.attributes),
        }

    def applies(self) -> bool:
        """Draw once per connection: does this toxic apply to it?"""
        if self.toxicity >= 1.0:
            return True
        # Not security sensitive: a share of connections, not a secret.
        return random.random() < self.toxicity  # noqa: S311

    def delay_s(self) -> float:
        """A latency toxic's delay for one chunk: latency +/- jitter, never negative."""
        latency = self.attributes["latency_ms"]
        jitter = self.attributes["jitter_ms"]
        if jitter:
            latency += random.uniform(-jitter, jitter)  # noqa: S311
        return max(0.0, latency / 1000)

    def slices(self, size: int) -> list[int]:
        """A slicer toxic's piece sizes for a chunk of ``size`` bytes (they add up to it)."""
        average = self.attributes["average_size"]
        variation = self.attributes["size_variation"]
        pieces: list[int] = []
        left = size
        while left > 0:
            piece = average + (random.randint(-variation, variation) if variation else 0)  # noqa: S311
            piece = min(left, max(1, piece))
            pieces.append(piece)
            left -= piece
        return pieces


def parse_toxic(body: Any) -> Toxic:
    """A toxic from a control API body; ``ValueError`` with one line naming the field."""
    if not isinstance(body, Mapping):
        raise ValueError("body: expected a JSON object")
    unknown = set(body) - {"name", "type", "direction", "toxicity", "attributes"}
    if unknown:
        raise ValueError(f"unknown field {sorted(unknown)[0]!r}")
    kind = body.get("type")
    if kind not in TOXIC_TYPES:
        raise ValueError(f"type: expected one of {', '.join(TOXIC_TYPES)}, got {kind!r}")
    direction = body.get("direction", "downstream")
    if direction not in DIRECTIONS:
        raise ValueError(f"direction: expected upstream or downstream, got {direction!r}")
    toxicity = body.get("toxicity", 1.0)
    if (
        isinstance(toxicity, bool)
        or not isinstance(toxicity, int | float)
        or not 0.0 <= toxicity <= 1.0
    ):
        raise ValueError(f"toxicity: expected a number from 0 to 1, got {toxicity!r}")
    name = body.get("name") or f"{kind}_{direction}"
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValueError(f"name: expected 1-64 letters, digits, '_', '.' or '-', got {name!r}")
    attributes = _attributes(kind, body.get("attributes") or {})
    return Toxic(name, kind, direction, float(toxicity), attributes)


def _attributes(kind: str, given: Any) -> dict[str, int]:
    if not isinstance(given, Mapping):
        raise ValueError("attributes: expected a JSON object")
    known = TOXIC_TYPES[kind]
    for key, value in given.items():
        if key not in known:
            raise ValueError(
                f"attributes.{key}: not an attribute of {kind} (expected {', '.join(known)})"
            )
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ATTRIBUTE:
            raise ValueError(f"attributes.{key}: expected a whole number >= 0, got {value!r}")
    for key in REQUIRED.get(kind, ()):
        if key not in given:
            raise ValueError(f"attributes.{key}: required for {kind}")
    attributes = {**known, **given}
    if kind == "bandwidth" and attributes["rate_kbps"] < 1:
        raise ValueError("attributes.rate_kbps: expected at least 1 (KB/s)")
    if kind == "slicer":
        if attributes["average_size"] < 1:
            raise ValueError("attributes.average_size: expected at least 1 byte")
        if attributes["size_variation"] >= attributes["average_size"]:
            raise ValueError("attributes.size_variation: expected less than average_size")
    return attributes
