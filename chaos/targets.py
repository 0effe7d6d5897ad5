"""Which agents of a group a step hits: the target spec as written, and the choice itself.

An experiment names its targets in one of five ways::

    targets: [orders-1, orders-2]   # these agents
    targets: one                    # one agent, chosen at random
    targets: {random: 2}            # two agents, chosen at random
    targets: {percent: 50}          # half the group, rounded up, at least one agent
    targets: {all-but: 1}           # every agent but one (chosen at random)
    targets: all                    # every agent (the same as {all-but: 0})

The choice is made with the run's ``random.Random``, so a seeded run picks the same agents
again, and the chosen names come back in inventory order.
"""

from __future__ import annotations

import contextlib
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from chaos.errors import ExperimentError

TargetMode = Literal["names", "one", "random", "percent", "all_but"]

AGENT_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
TARGETS_EXPECTED = (
    "expected a list of agent names, one, all, {random: N}, {percent: P} or {all-but: N}"
)


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """Which agents a step hits; ``count`` for random and all_but, ``percent`` for percent."""

    mode: TargetMode
    names: tuple[str, ...] = ()
    count: int = 0
    percent: float = 0

    def __str__(self) -> str:
        if self.mode == "names":
            return ", ".join(self.names)
        if self.mode == "one":
            return "one"
        if self.mode == "random":
            return f"random {self.count}"
        if self.mode == "percent":
            return f"{self.percent:g}%"
        return "all" if self.count == 0 else f"all but {self.count}"


ALL = TargetSpec(mode="all_but", count=0)


class TargetSyntaxError(ValueError):
    """A target spec as written is wrong; the message says what was expected."""


def parse_targets(value: Any) -> TargetSpec:
    """A YAML value (list, string or one-key mapping) as a ``TargetSpec``.

    Raises ``TargetSyntaxError``; the experiment loader adds the file, line and field.
    """
    if isinstance(value, str):
        if value == "one":
            return TargetSpec(mode="one")
        if value == "all":
            return ALL
        raise TargetSyntaxError(f"unknown target {value!r}; {TARGETS_EXPECTED}")
    if isinstance(value, list):
        if not value:
            raise TargetSyntaxError(f"the list is empty; {TARGETS_EXPECTED}")
        names = []
        for item in value:
            if not isinstance(item, str) or not AGENT_NAME_RE.fullmatch(item):
                raise TargetSyntaxError(
                    "an agent name must be 1 to 63 lower case letters, digits, '-' or '_'; "
                    "expected names as in the inventory, e.g. [orders-1]"
                )
            if item in names:
                raise TargetSyntaxError(f"agent {item} is listed twice; expected each name once")
            names.append(item)
        return TargetSpec(mode="names", names=tuple(names))
    if isinstance(value, dict):
        if len(value) != 1:
            raise TargetSyntaxError(f"a mapping with {len(value)} keys; {TARGETS_EXPECTED}")
        ((key, number),) = value.items()
        if key == "random":
            return TargetSpec(mode="random", count=_whole(key, number, minimum=1))
        if key == "all-but":
            return TargetSpec(mode="all_but", count=_whole(key, number, minimum=0))
        if key == "percent":
            if isinstance(number, str) and number.strip().endswith("%"):
                with contextlib.suppress(ValueError):
                    number = float(number.strip()[:-1])
            if isinstance(number, bool) or not isinstance(number, int | float):
                raise TargetSyntaxError("percent: expected a number above 0 and at most 100")
            if not 0 < number <= 100:
                raise TargetSyntaxError("percent: expected a number above 0 and at most 100")
            return TargetSpec(mode="percent", percent=float(number))
        raise TargetSyntaxError(f"unknown key {str(key)!r}; {TARGETS_EXPECTED}")
    raise TargetSyntaxError(TARGETS_EXPECTED)


def _whole(key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TargetSyntaxError(f"{key}: expected a whole number >= {minimum}")
    return value


def select_targets(spec: TargetSpec, agents: Sequence[str], rng: random.Random) -> list[str]:
    """The agents ``spec`` hits among ``agents`` (a group's names, in inventory order).

    The result keeps inventory order. Unknown names, or more agents asked for than the
    group has, raise ``ExperimentError`` with a one-line message.
    """
    agents = list(agents)
    size = len(agents)
    if spec.mode == "names":
        unknown = [name for name in spec.names if name not in agents]
        if unknown:
            raise ExperimentError(
                f"targets: no agent {', '.join(unknown)} in the group; expected one of "
                + (", ".join(agents) or "(the group has no agents)")
            )
        chosen = set(spec.names)
    elif spec.mode == "one":
        chosen = set(_sample(agents, 1, rng, "one"))
    elif spec.mode == "random":
        chosen = set(_sample(agents, spec.count, rng, f"random: {spec.count}"))
    elif spec.mode == "percent":
        count = max(1, math.ceil(size * spec.percent / 100 - 1e-9))
        chosen = set(_sample(agents, count, rng, f"percent: {spec.percent:g}"))
    elif spec.mode == "all_but":
        if spec.count > size:
            raise ExperimentError(
                f"targets: all-but {spec.count} in a group of {size} agents; "
                f"expected at most {size}"
            )
        spared = set(rng.sample(agents, spec.count))
        chosen = {name for name in agents if name not in spared}
    else:  # pragma: no cover - the Literal type rules it out
        raise ExperimentError(f"targets: unknown mode {spec.mode!r}")
    return [name for name in agents if name in chosen]


def _sample(agents: list[str], count: int, rng: random.Random, what: str) -> list[str]:
    if count > len(agents):
        raise ExperimentError(
            f"targets: {what} needs {count} agents but the group has {len(agents)}; "
            f"expected at most {len(agents)}"
        )
    return rng.sample(agents, count)
