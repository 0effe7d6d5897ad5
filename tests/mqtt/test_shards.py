"""Two shards over one fleet: each agent probed by exactly one monitor, and through the broker
both serve the same consensus view of the whole fleet, equal to what one unsharded monitor sees."""

from __future__ import annotations

import pytest

from monitor.shard import Shard
from tests.mqtt.mqtt_support import monitor_server, settings, until

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]


async def test_two_shards_share_one_fleet(fleet, broker) -> None:
    peers = ("shard-1", "shard-2")

    def sharded(k: int):
        mqtt = settings(broker.url, f"shard-{k}", peers=peers, shard=f"{k}/2")
        return monitor_server(fleet, mqtt, shard=Shard(k, 2))

    async with (
        sharded(1) as s1,
        sharded(2) as s2,
        monitor_server(fleet, settings(broker.url, "whole")) as whole,
    ):
        one, two = set(s1.monitor.store.agent_ids), set(s2.monitor.store.agent_ids)
        assert one and two and not one & two
        assert one | two == set(whole.monitor.store.agent_ids)

        def same_as_whole(server) -> bool:
            view = server.snapshot()["consensus"]
            store = whole.monitor.store
            return all(
                view["agents"][a]["state"] == store.agent(a).state.value for a in store.agent_ids
            ) and all(
                view["groups"][g]["status"] == store.group(g).status.value
                and store.group(g).status.value != "unknown"
                for g in store.group_ids
            )

        await until(lambda: same_as_whole(s1) and same_as_whole(s2), what="one fleet")
        view = s1.snapshot()["consensus"]
        assert view["vantage_points"]["shard-2"]["shard"] == "2/2"
        assert all(len(entry["votes"]) == 1 for entry in view["agents"].values())

        # An agent of shard 2 stops: shard 1, which does not probe it, sees it down too.
        agent = sorted(two)[0]
        fleet.set(agent, stopped=True)
        await until(lambda: s1.snapshot()["consensus"]["agents"][agent]["state"] == "down")
        assert s1.snapshot()["consensus"]["agents"][agent]["votes"] == {"shard-2": "down"}
