"""Two and three shards over one fleet: each agent probed by exactly one monitor, and through the
broker every shard serves the same consensus view of the whole fleet, equal to what one unsharded
monitor sees."""

from __future__ import annotations

import contextlib

import pytest
from aio_helpers import until

from monitor.shard import Shard
from tests.mqtt.mqtt_support import monitor_server, settings

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]


@pytest.mark.parametrize("count", [2, 3])
async def test_shards_share_one_fleet(fleet, broker, count: int) -> None:
    peers = tuple(f"shard-{k}" for k in range(1, count + 1))

    def sharded(k: int):
        mqtt = settings(broker.url, f"shard-{k}", peers=peers, shard=f"{k}/{count}")
        return monitor_server(fleet, mqtt, shard=Shard(k, count))

    async with contextlib.AsyncExitStack() as stack:
        shards = [await stack.enter_async_context(sharded(k)) for k in range(1, count + 1)]
        whole = await stack.enter_async_context(
            monitor_server(fleet, settings(broker.url, "whole"))
        )
        owned = [set(s.monitor.store.agent_ids) for s in shards]
        everyone = set(whole.monitor.store.agent_ids)
        assert sum(len(agents) for agents in owned) == len(everyone)  # no agent twice
        assert set().union(*owned) == everyone  # and none left out

        def differences(server) -> list[str]:
            view = server.snapshot()["consensus"]
            store = whole.monitor.store
            agents = [
                f"{a}: {view['agents'][a]['state']} != {store.agent(a).state.value}"
                for a in store.agent_ids
                if view["agents"][a]["state"] != store.agent(a).state.value
            ]
            groups = [
                f"{g}: {view['groups'][g]['status']} != {store.group(g).status.value}"
                for g in store.group_ids
                if view["groups"][g]["status"] != store.group(g).status.value
                or store.group(g).status.value == "unknown"
            ]
            return agents + groups

        def described() -> str:
            return "one fleet: " + "; ".join(
                f"{s.publisher.settings.monitor_id} {differences(s)}" for s in shards
            )

        # Each shard's view comes through the broker a moment after the whole monitor's own
        # probes: compared again until they agree (more time on a busy machine).
        await until(lambda: not any(differences(s) for s in shards), 20.0, described)
        view = shards[0].snapshot()["consensus"]
        assert view["vantage_points"][f"shard-{count}"]["shard"] == f"{count}/{count}"
        assert all(len(entry["votes"]) == 1 for entry in view["agents"].values())

        # An agent of the last shard stops: the first shard, which does not probe it, sees it
        # down too.
        agent = sorted(owned[-1])[0]
        fleet.set(agent, stopped=True)
        first = shards[0]
        await until(lambda: first.snapshot()["consensus"]["agents"][agent]["state"] == "down")
        assert first.snapshot()["consensus"]["agents"][agent]["votes"] == {f"shard-{count}": "down"}
