"""MQTT publisher: events per second through a real Mosquitto, and state change to delivery.

Both parts start their own Mosquitto on a free loopback port (plain MQTT: loopback only) and
read the monitor's events topic with an aiomqtt subscriber.

  throughput  the real publisher (monitor.mqtt.Publisher) on a real StateStore in this
              process, over --agents synthetic agents in groups of three (rise and fall 1);
              a driver flips random agents up and down as fast as the publisher drains them,
              keeping at most --backlog events undelivered, for --window seconds. The
              subscriber runs in a process of its own, so it does not share this process's
              core with the publisher, and checks that every event arrived once and in order.
              In-process rather than a monitor on a fleet: probes cannot change states fast
              enough to find the publisher's limit, and the path from the store on is the same.
  latency     a real 'agentha monitor --mqtt URL --mqtt-insecure' on an 'agentha sim' fleet
              (status every --interval seconds); agents are paused and resumed through the
              fleet's control API, --rate changes a second, round robin, until --changes
              changes were seen. Per event (agent and group): from the event's own 'time'
              (set by the monitor when the transition happened) to its arrival at the
              subscriber. Per change, separately: from the control-API call to the agent
              event's arrival; that one is dominated by when the next status probe runs
              (uniform over one interval), not by MQTT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

import aiohttp
import procstat
import stack

EVENTS_TOPIC = "agentha/v1/{}/events"
MONITOR_ID = "bench"
SUBSCRIBER_READY_TIMEOUT_S = 15.0
DRAIN_TIMEOUT_S = 30.0
CHANGE_TIMEOUT_S = 30.0

EPILOG = """\
examples:
  .venv/bin/python bench/mqtt_events.py                      # both parts, about 1 min
  .venv/bin/python bench/mqtt_events.py --only throughput --agents 3000 --window 30
  .venv/bin/python bench/mqtt_events.py --only latency --changes 400 --rate 8 --interval 0.5
"""


def percentile(values: list[float], q: float) -> float:
    """Nearest rank: the smallest value with at least q of the sample at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def broker(folder: Path) -> contextlib.AbstractContextManager:
    """A plain loopback Mosquitto, or a one-line error when there is none."""
    from monitor.mqtt_broker import LocalMosquitto, find_mosquitto

    if find_mosquitto() is None:
        raise stack.BenchError("mosquitto is not installed (Debian package 'mosquitto')")

    @contextlib.contextmanager
    def started():
        running = LocalMosquitto(folder)
        try:
            running.start()
        except RuntimeError as exc:
            raise stack.BenchError(str(exc)) from None
        try:
            yield running
        finally:
            running.stop()

    return started()


# -- throughput: the subscriber process ---------------------------------------------------


def count_events(port: int, topic: str, conn: Connection) -> None:
    """Subscriber process: count events until told the last seq, then send a summary."""
    with contextlib.suppress(KeyboardInterrupt):  # the parent reports an interrupted run
        asyncio.run(_count_events(port, topic, conn))


async def _count_events(port: int, topic: str, conn: Connection) -> None:
    import aiomqtt

    seqs: list[int] = []
    states = 0  # retained agent and group states, published alongside the events
    first = last = 0.0
    per_second: dict[int, int] = {}
    async with aiomqtt.Client("127.0.0.1", port, keepalive=10, timeout=5) as client:
        await client.subscribe(topic.removesuffix("events") + "#", qos=1)
        conn.send("ready")
        expected: int | None = None
        deadline = float("inf")
        messages = aiter(client.messages)
        while expected is None or (seqs and seqs[-1] < expected and time.time() < deadline):
            if expected is None and conn.poll():
                expected, deadline = conn.recv(), time.time() + DRAIN_TIMEOUT_S
                continue
            try:
                message = await asyncio.wait_for(anext(messages), 0.2)
            except TimeoutError:
                if expected is not None and not seqs:
                    break
                continue
            if str(message.topic) != topic:
                states += 1
                continue
            now = time.time()
            first = first or now
            last = now
            per_second[int(now)] = per_second.get(int(now), 0) + 1
            seqs.append(json.loads(message.payload)["seq"])  # type: ignore[arg-type]
    in_order = seqs == list(range(1, len(seqs) + 1))
    full_seconds = sorted(per_second.items())[1:-1]  # the first and last second are partial
    conn.send(
        {
            "received": len(seqs),
            "unique": len(set(seqs)),
            "states": states,
            "in_order": in_order,
            "last_seq": seqs[-1] if seqs else 0,
            "seconds": last - first,
            "per_second": [n for _, n in full_seconds],
        }
    )


# -- throughput: the publisher and the driver in this process -----------------------------


def synthetic_store(agents: int):
    """A StateStore over ``agents`` agents in groups of three (two required), rise/fall 1."""
    from monitor.state import GroupSpec, StateStore

    groups = {}
    for g in range(-(-agents // 3)):
        ids = tuple(f"bench/g{g}/a{a}" for a in range(3) if g * 3 + a < agents)
        groups[f"bench/g{g}"] = GroupSpec(required=min(2, len(ids)), agents=ids)
    # Room for a whole window's events, so none leave the log before they are published.
    from monitor.events import EventLog

    return StateStore(groups, rise=1, fall=1, events=EventLog(capacity=1_000_000))


async def drive(store, publisher, window: float, backlog: int) -> float:
    """Flip random agents up/down for ``window`` s, keeping at most ``backlog`` events
    undelivered; returns when every event is delivered. The result is the driving time."""
    from monitor.state import Liveness

    ids = store.agent_ids
    started = time.monotonic()
    while time.monotonic() - started < window:
        if store.events.last_seq - publisher.published >= backlog:
            await asyncio.sleep(0.001)
            continue
        for agent_id in random.sample(ids, min(len(ids), 20)):
            up = store.agent(agent_id).liveness is Liveness.UP
            store.observe_status(agent_id, Liveness.DOWN if up else Liveness.UP, "bench")
        await asyncio.sleep(0)
    driven = time.monotonic() - started
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while publisher.published < store.events.last_seq:
        if time.monotonic() > deadline or not publisher.connected:
            raise stack.BenchError(
                f"the publisher delivered {publisher.published} of {store.events.last_seq} "
                f"events (connected: {publisher.connected}, error: {publisher.last_error})"
            )
        await asyncio.sleep(0.01)
    return driven


async def publish_events(port: int, args: argparse.Namespace, subscriber_pid: int) -> dict:
    from monitor.mqtt import Publisher, mqtt_settings

    store = synthetic_store(args.agents)
    settings = mqtt_settings(f"mqtt://127.0.0.1:{port}", MONITOR_ID, insecure=True)
    publisher = Publisher(settings, store, version="bench")
    running = asyncio.create_task(publisher.run())
    try:
        deadline = time.monotonic() + 10
        while not publisher.connected:
            if running.done() or time.monotonic() > deadline:
                raise stack.BenchError(f"cannot connect to the broker: {publisher.last_error}")
            await asyncio.sleep(0.01)
        # The broker is the rest of this process's tree (beside a tracker that sleeps).
        trees = {"all": os.getpid(), "subscriber": subscriber_pid}
        before = procstat.read_cpu(trees, time.monotonic(), {"publisher": os.getpid()})
        driven = await drive(store, publisher, args.window, args.backlog)
        after = procstat.read_cpu(trees, time.monotonic(), {"publisher": os.getpid()})
    finally:
        publisher.stop()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(running, 10)
    return {
        "events": store.events.last_seq,
        "driven": driven,
        "dropped": publisher.dropped,
        "publisher_cores": after.cores_since(before, "publisher"),
        "subscriber_cores": after.cores_since(before, "subscriber"),
        "broker_cores": after.cores_since(before, "all")
        - after.cores_since(before, "publisher")
        - after.cores_since(before, "subscriber"),
        "machine_cores": after.machine_cores_since(before),
    }


def throughput(work: Path, args: argparse.Namespace) -> dict:
    with broker(work / "broker-throughput") as running:
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        topic = EVENTS_TOPIC.format(MONITOR_ID)
        subscriber = context.Process(
            target=count_events, args=(running.port, topic, theirs), daemon=True
        )
        subscriber.start()
        try:
            if not ours.poll(SUBSCRIBER_READY_TIMEOUT_S):
                raise stack.BenchError(
                    f"the subscriber did not subscribe within {SUBSCRIBER_READY_TIMEOUT_S:.0f} s"
                    f" (its exit code: {subscriber.exitcode})"
                )
            ours.recv()
            published = asyncio.run(publish_events(running.port, args, subscriber.pid))
            ours.send(published["events"])
            if not ours.poll(DRAIN_TIMEOUT_S + 5):
                raise stack.BenchError(
                    f"the subscriber sent no summary (its exit code: {subscriber.exitcode})"
                )
            return {**published, **ours.recv()}
        finally:
            subscriber.join(timeout=5)
            if subscriber.is_alive():
                subscriber.kill()
                subscriber.join()


# -- latency: a monitor on a simulated fleet ----------------------------------------------


async def change_states(
    the_fleet: stack.Fleet, monitor: stack.Monitor, port: int, args: argparse.Namespace
) -> tuple[list[float], list[float], int]:
    """Pause/resume agents; returns (event time to arrival per event, control call to
    arrival per change, changes missed)."""
    import aiomqtt

    event_delays: list[float] = []
    change_delays: list[float] = []
    pending: dict[str, tuple[float, bool]] = {}  # agent -> (call time, paused by the call)
    baseline = monitor.snapshot()["last_event"]

    async def follow(client: aiomqtt.Client) -> None:
        async for message in client.messages:
            arrived = time.time()
            event = json.loads(message.payload)  # type: ignore[arg-type]
            if event["seq"] <= baseline:
                continue
            event_delays.append(arrived - event["time"])
            call = pending.get(event["id"]) if event["kind"] == "agent" else None
            if call is not None and (event["new"] == "paused") == call[1]:
                change_delays.append(arrived - call[0])
                del pending[event["id"]]

    headers = {"Authorization": f"Bearer {the_fleet.token}"}
    control = the_fleet.info["control_url"]
    agents = [agent["id"] for agent in the_fleet.agents]
    paused = dict.fromkeys(agents, False)
    missed = 0
    async with (
        aiomqtt.Client("127.0.0.1", port, keepalive=10, timeout=5) as client,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10), headers=headers) as http,
    ):
        await client.subscribe(EVENTS_TOPIC.format(MONITOR_ID), qos=1)
        follower = asyncio.create_task(follow(client))
        try:
            turn = 0
            next_at = time.monotonic()
            while len(change_delays) + missed < args.changes:
                if follower.done():
                    follower.result()
                    raise stack.BenchError("the MQTT subscription ended")
                now = time.time()
                for agent_id, (called, _) in list(pending.items()):
                    if now - called > CHANGE_TIMEOUT_S:  # the monitor never saw it
                        missed += 1
                        del pending[agent_id]
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                next_at += 1 / args.rate
                agent_id = agents[turn % len(agents)]
                turn += 1
                if agent_id in pending or len(pending) + len(change_delays) + missed >= (
                    args.changes
                ):
                    continue  # its last change is not seen yet, or enough are under way
                paused[agent_id] = not paused[agent_id]
                pending[agent_id] = (time.time(), paused[agent_id])
                url = f"{control}/v1/agents/{agent_id}/conditions"
                # The TTL only guards against a benchmark that dies before it resumes.
                body = {"paused": True, "ttl_s": 300} if paused[agent_id] else None
                method = "PATCH" if paused[agent_id] else "DELETE"
                try:
                    async with http.request(method, url, json=body) as answer:
                        if answer.status != 200:
                            raise stack.BenchError(f"{method} {url} answered {answer.status}")
                except aiohttp.ClientError as exc:
                    raise stack.BenchError(f"{method} {url}: {exc}") from None
            await asyncio.sleep(1.0)  # group events that follow the last agent event
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
    return event_delays, change_delays, missed


async def all_up(monitor: stack.Monitor, agents: int) -> None:
    deadline = time.monotonic() + 60
    while True:
        snapshot = await asyncio.to_thread(monitor.snapshot)
        if sum(a["state"] == "up" for a in snapshot["agents"].values()) == agents:
            return
        if time.monotonic() > deadline:
            raise stack.BenchError(f"not every one of {agents} agents up after 60 s")
        await asyncio.sleep(0.2)


def latency(work: Path, args: argparse.Namespace) -> tuple[list[float], list[float], int]:
    with broker(work / "broker-latency") as running:
        options = [
            "--status-interval",
            str(args.interval),
            "--fast-interval",
            str(min(1.0, args.interval)),
            "--mqtt",
            running.url,
            "--mqtt-insecure",
            "--monitor-id",
            MONITOR_ID,
            "--log-level",
            "warning",
        ]
        with (
            stack.fleet(work / "fleet", args.fleet) as the_fleet,
            stack.monitor(the_fleet, work / "monitor.log", *options) as monitor,
        ):

            async def run() -> tuple[list[float], list[float], int]:
                await all_up(monitor, len(the_fleet.agents))
                return await change_states(the_fleet, monitor, running.port, args)

            return asyncio.run(run())


# -- report -------------------------------------------------------------------------------


def ms(values: list[float]) -> str:
    return (
        f"p50 {percentile(values, 0.5) * 1000:.1f} ms, p95 "
        f"{percentile(values, 0.95) * 1000:.1f} ms, max {max(values) * 1000:.1f} ms"
    )


def report_throughput(result: dict, args: argparse.Namespace) -> None:
    rate = result["received"] / result["seconds"] if result["seconds"] else 0.0
    seconds = result["per_second"]
    print(
        f"\nthroughput: {args.agents} synthetic agents, at most {args.backlog} events "
        f"undelivered, driven {result['driven']:.1f} s"
    )
    print(
        f"  events published {result['events']}, received {result['received']} "
        f"({result['unique']} distinct), in order 1..N: {result['in_order']}, "
        f"dropped {result['dropped']}; retained states published alongside "
        f"{result['states']}"
    )
    print(
        f"  end to end {rate:,.0f} events/s over {result['seconds']:.1f} s"
        + (
            f" (whole seconds: min {min(seconds):,}, median {statistics.median(seconds):,.0f},"
            f" max {max(seconds):,})"
            if seconds
            else ""
        )
    )
    print(
        f"  CPU: publisher process {result['publisher_cores']:.2f} cores, broker "
        f"{result['broker_cores']:.2f}, subscriber {result['subscriber_cores']:.2f}, "
        f"whole machine {result['machine_cores']:.2f} of {os.cpu_count()}"
    )
    if not (result["in_order"] and result["received"] == result["events"]):
        raise stack.BenchError("events were lost, repeated or out of order (see above)")


def report_latency(
    events: list[float], changes: list[float], missed: int, args: argparse.Namespace
) -> None:
    print(
        f"\nlatency: {args.fleet} agents, status every {args.interval:g} s, "
        f"{args.rate:g} pause/resume changes a second"
    )
    print(f"  event time to MQTT arrival, {len(events)} events: {ms(events)}")
    print(
        f"  control-API call to MQTT arrival, {len(changes)} changes ({missed} not seen "
        f"within {CHANGE_TIMEOUT_S:.0f} s): {ms(changes)}"
    )
    print(f"    (mostly the wait for the next status probe: uniform over {args.interval:g} s)")


def main() -> int:
    parser = stack.argument_parser(__doc__, EPILOG)
    parser.add_argument(
        "--only", choices=("throughput", "latency"), help="run one part (default: both)"
    )
    parser.add_argument(
        "--agents", type=int, default=300, help="throughput: synthetic agents (default 300)"
    )
    parser.add_argument(
        "--window", type=float, default=10.0, help="throughput: seconds of driving (default 10)"
    )
    parser.add_argument(
        "--backlog",
        type=int,
        default=500,
        help="throughput: undelivered events at most (default 500)",
    )
    parser.add_argument(
        "--fleet", type=int, default=12, help="latency: simulated agents (default 12)"
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=1.0,
        help="latency: status probe interval in seconds (default 1)",
    )
    parser.add_argument(
        "--rate", type=float, default=4.0, help="latency: pause/resume changes a second (default 4)"
    )
    parser.add_argument(
        "--changes", type=int, default=150, help="latency: changes to time (default 150)"
    )
    args = parser.parse_args()
    if min(args.agents, args.backlog, args.fleet, args.changes) < 1:
        parser.error("--agents, --backlog, --fleet and --changes must be at least 1")
    if min(args.window, args.interval, args.rate) <= 0:
        parser.error("--window, --interval and --rate must be positive")
    with tempfile.TemporaryDirectory(prefix="mqtt-events-") as tmp:
        work = Path(tmp)
        if args.only in (None, "throughput"):
            report_throughput(throughput(work, args), args)
        if args.only in (None, "latency"):
            report_latency(*latency(work, args), args)
    return 0


if __name__ == "__main__":
    sys.exit(stack.main_guard(main))
