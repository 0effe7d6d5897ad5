"""Several vantage points, one verdict: the consensus state of agents seen by peer monitors.

Each monitor publishes its own observations over MQTT; ``PeerView`` keeps what the peers
published (presence and agent states) and ``consensus()`` combines them with our own store:

- only live vantage points vote: ourselves, and peers whose presence is ``online``;
- a vantage point that reaches none of its agents (every agent it has probed is down) is
  *cut off*: its votes are left out wherever a vantage point that is not cut off sees the agent;
- an agent is ``down`` only when a quorum (a strict majority) of its voters see it down;
  otherwise it takes the most common other state among them.

It is a view: nothing here feeds back into the StateStore.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from monitor.state import AgentState, StateStore

log = logging.getLogger(__name__)

_STATES = frozenset(s.value for s in AgentState)
# Tie-break among non-down states: the state that takes traffic wins.
_PREFERENCE = ("up", "degraded", "paused")


@dataclass(slots=True)
class Vantage:
    """What one monitor published: its presence and its agents' states."""

    online: bool = False
    shard: str | None = None
    agents: dict[str, str] = field(default_factory=dict)

    @property
    def known(self) -> dict[str, str]:
        return {a: s for a, s in self.agents.items() if s != AgentState.UNKNOWN.value}

    @property
    def cut_off(self) -> bool:
        known = self.known
        return bool(known) and all(s == AgentState.DOWN.value for s in known.values())


class PeerView:
    """The peers' last published presence and agent states, fed by the MQTT subscriber."""

    def __init__(self, peers: Iterable[str]) -> None:
        self.peers: tuple[str, ...] = tuple(dict.fromkeys(peers))
        self._vantage: dict[str, Vantage] = {p: Vantage() for p in self.peers}

    def vantage(self, monitor_id: str) -> Vantage | None:
        return self._vantage.get(monitor_id)

    def on_presence(self, monitor_id: str, payload: bytes) -> None:
        vantage = self._vantage.get(monitor_id)
        data = _decode(payload)
        if vantage is None or data is None:
            return
        was = vantage.online
        vantage.online = data.get("status") == "online"
        shard = data.get("shard")
        vantage.shard = shard if isinstance(shard, str) else None
        if was != vantage.online:
            level = logging.INFO if vantage.online else logging.WARNING
            log.log(level, "peer %s is %s", monitor_id, "online" if vantage.online else "offline")

    def on_agent(self, monitor_id: str, agent_id: str, payload: bytes) -> None:
        vantage = self._vantage.get(monitor_id)
        if vantage is None:
            return
        if not payload:  # a cleared retained topic: the peer no longer watches the agent
            vantage.agents.pop(agent_id, None)
            return
        data = _decode(payload)
        state = data.get("state") if data is not None else None
        if state in _STATES:
            vantage.agents[agent_id] = state
        else:
            log.debug("ignored an agent state from peer %s that is not valid", monitor_id)


def _decode(payload: bytes) -> dict[str, object] | None:
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def decide(votes: Mapping[str, str]) -> str:
    """One agent's consensus state from the votes of its voters (monitor id -> state)."""
    if not votes:
        return AgentState.UNKNOWN.value
    counts = Counter(votes.values())
    if counts[AgentState.DOWN.value] >= len(votes) // 2 + 1:
        return AgentState.DOWN.value
    others = [(counts[s], -_PREFERENCE.index(s), s) for s in _PREFERENCE if counts[s]]
    return max(others)[2] if others else AgentState.UNKNOWN.value


def consensus(
    self_id: str,
    store: StateStore,
    peers: PeerView,
    groups: Mapping[str, tuple[int, tuple[str, ...]]],
    *,
    shard: str | None = None,
) -> dict[str, object]:
    """The consensus view: vantage points, agents and groups of the whole inventory.

    ``groups`` is group id -> (required, agent ids) of the full inventory (not our shard only).
    """
    mine = Vantage(
        online=True,
        shard=shard,
        agents={a: store.agent(a).state.value for a in store.agent_ids},
    )
    vantages = {self_id: mine}
    vantages.update((p, v) for p in peers.peers if p != self_id and (v := peers.vantage(p)))
    live = {m: v for m, v in vantages.items() if v.online}

    agents: dict[str, dict[str, object]] = {}
    for _required, members in groups.values():
        for agent_id in members:
            seen = {m: v.agents[agent_id] for m, v in live.items() if agent_id in v.known}
            fresh = {m: s for m, s in seen.items() if not live[m].cut_off}
            votes = fresh or seen
            agents[agent_id] = {
                "state": decide(votes),
                "votes": votes,
                "left_out": sorted(set(seen) - set(votes)),
            }

    group_view = {}
    for group_id, (required, members) in groups.items():
        states = [agents[a]["state"] for a in members]
        healthy = sum(s in ("up", "degraded") for s in states)
        if "unknown" in states:
            status = "unknown"
        elif healthy < required:
            status = "unavailable"
        elif healthy == required:
            status = "at_risk"
        else:
            status = "ok"
        group_view[group_id] = {
            "status": status,
            "healthy": healthy,
            "required": required,
            "total": len(members),
            "redundancy": healthy - required,
        }

    points = {
        m: {
            "online": v.online,
            "cut_off": v.online and v.cut_off,
            "shard": v.shard,
            "agents": len(v.known),
            "reachable": sum(s != "down" for s in v.known.values()),
            "self": m == self_id,
        }
        for m, v in vantages.items()
    }
    return {"vantage_points": points, "agents": agents, "groups": group_view}
