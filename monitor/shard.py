"""Sharding: N monitors split one inventory, each agent probed by exactly one of them.

Rendezvous (highest random weight) hashing: every shard scores every agent id and the highest
score wins. Adding agents moves no existing agent, and going from N to N+1 shards moves only
the agents the new shard wins (about 1/(N+1) of them), unlike ``hash % N``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass

from monitor.inventory import Group, Inventory

_SHARD = re.compile(r"^(\d+)/(\d+)$")


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, key: str) -> bool:
        return owner(key, self.count) == self.index


def parse_shard(text: str) -> Shard:
    """``K/N`` with 1 <= K <= N; ``ValueError`` with a message for anything else."""
    match = _SHARD.match(text.strip())
    if not match:
        raise ValueError(f"expected K/N, for example 1/3, got {text!r}")
    index, count = int(match[1]), int(match[2])
    if not 1 <= index <= count:
        raise ValueError(f"expected 1 <= K <= N, got {text!r}")
    return Shard(index, count)


def _score(key: str, shard: int) -> int:
    digest = hashlib.blake2b(f"{shard}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(key: str, count: int) -> int:
    """The shard (1..count) that owns ``key``."""
    return max(range(1, count + 1), key=lambda shard: _score(key, shard))


def shard_inventory(inventory: Inventory, shard: Shard) -> Inventory:
    """The part of ``inventory`` that ``shard`` probes.

    Agents go by their id. A group's API checks run on the shard that owns the group id when
    that shard has one of its agents, else on the shard of the group's first agent (a group
    is only kept where some of its agents are, so it always has agents to roll up).
    """
    environments = []
    for env in inventory.environments:
        groups = []
        for group in env.groups:
            agents = tuple(a for a in group.agents if shard.owns(a.id))
            if not agents:
                continue
            checks = group.api_checks if _checks_owner(group, shard.count) == shard.index else ()
            groups.append(dataclasses.replace(group, agents=agents, api_checks=checks))
        if groups:
            environments.append(dataclasses.replace(env, groups=tuple(groups)))
    return dataclasses.replace(inventory, environments=tuple(environments))


def _checks_owner(group: Group, count: int) -> int:
    preferred = owner(group.id, count)
    agent_owners = [owner(a.id, count) for a in group.agents]
    return preferred if preferred in agent_owners else agent_owners[0]
