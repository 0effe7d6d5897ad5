"""How fast the monitor reports a stopped or hung agent as down.

Starts ``agentha sim --agents N`` and ``agentha monitor`` on it (status every 5 s, timeout 3 s,
fast re-probe 1 s, fall 2: the defaults except the interval), waits until every agent is up,
then runs trials: each picks a free agent, waits a random moment (uniform over one interval,
so faults land at any phase of the probe schedule), sets ``stopped`` or ``hang`` through the
fleet's control API, and times from just before that call to the agent's ``down`` event on
the monitor's SSE stream (/api/v1/events), as an API client sees it. The condition is then
cleared and the agent waited for until it is ``up`` again, ready for a later trial.

  stopped  listeners closed and open connections reset: the kept-alive status connection
           drops, which makes the monitor probe at once
  hang     connections accepted, requests never answered: each probe runs into its timeout

Goals: stopped p95 <= 1.5 s; hung p95 <= interval + timeout + fall x fast interval.
For comparison, HAProxy's defaults (inter 2 s, fall 3) take about 6 s to mark a server down.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import stack

FAULTS = ("stopped", "hang")
EVENT_TIMEOUT_S = 60.0
READY_TIMEOUT_S = 60.0

EPILOG = """\
examples:
  .venv/bin/python bench/detection.py                        # 30 trials of each, ~1.5 min
  .venv/bin/python bench/detection.py --trials 100 --parallel 16
  .venv/bin/python bench/detection.py --interval 10 --fall 3
"""


class EventWatch:
    """Follows the monitor's SSE stream; futures resolve when an agent reaches a state."""

    def __init__(self) -> None:
        self._waiting: dict[tuple[str, str], asyncio.Future[tuple[float, str]]] = {}

    def expect(self, agent_id: str, state: str) -> asyncio.Future[tuple[float, str]]:
        """A future for (monotonic time received, reason) of the agent's next ``state``."""
        future = asyncio.get_running_loop().create_future()
        self._waiting[(agent_id, state)] = future
        return future

    async def follow(self, session: aiohttp.ClientSession, url: str) -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with session.get(f"{url}/api/v1/events", timeout=timeout) as stream:
            if stream.status != 200:
                raise stack.BenchError(f"GET {url}/api/v1/events answered {stream.status}")
            kind = ""
            async for raw in stream.content:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind == "agent":
                    self._deliver(json.loads(line[6:]), time.monotonic())

    def _deliver(self, event: dict, received: float) -> None:
        future = self._waiting.pop((event["id"], event["new"]), None)
        if future is not None and not future.done():
            future.set_result((received, event["reason"]))


async def all_up(session: aiohttp.ClientSession, url: str, agents: int) -> None:
    """Wait until the monitor has every agent up, at most ``READY_TIMEOUT_S``."""
    up = 0
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            while up < agents:
                async with session.get(f"{url}/api/v1/snapshot") as answer:
                    snapshot = await answer.json()
                up = sum(a["state"] == "up" for a in snapshot["agents"].values())
                await asyncio.sleep(0.5)
    except TimeoutError:
        raise stack.BenchError(
            f"only {up} of {agents} agents up after {READY_TIMEOUT_S:.0f} s"
        ) from None


async def run_trials(
    fleet: stack.Fleet, monitor: stack.Monitor, args: argparse.Namespace
) -> dict[str, list[tuple[float, str]]]:
    headers = {"Authorization": f"Bearer {fleet.token}"}
    control = fleet.info["control_url"]
    results: dict[str, list[tuple[float, str]]] = {fault: [] for fault in FAULTS}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        await all_up(session, monitor.url, len(fleet.agents))
        watch = EventWatch()
        follower = asyncio.create_task(watch.follow(session, monitor.url))
        await asyncio.sleep(0.5)  # the stream is open before the first fault
        free: asyncio.Queue[str] = asyncio.Queue()
        for agent in random.sample(fleet.agents, len(fleet.agents)):
            free.put_nowait(agent["id"])
        todo = [fault for fault in FAULTS for _ in range(args.trials)]
        random.shuffle(todo)

        async def conditions(method: str, agent_id: str, body: dict | None = None) -> None:
            url = f"{control}/v1/agents/{agent_id}/conditions"
            async with session.request(method, url, json=body, headers=headers) as answer:
                if answer.status != 200:
                    raise stack.BenchError(f"{method} {url} answered {answer.status}")

        async def trial(fault: str) -> None:
            agent_id = await free.get()
            await asyncio.sleep(random.uniform(0, args.interval))
            down = watch.expect(agent_id, "down")
            started = time.monotonic()
            # The TTL only guards against a benchmark that dies before it reverts.
            await conditions("PATCH", agent_id, {fault: True, "ttl_s": 300})
            received, reason = await asyncio.wait_for(down, EVENT_TIMEOUT_S)
            results[fault].append((received - started, reason))
            up = watch.expect(agent_id, "up")
            await conditions("DELETE", agent_id)
            await asyncio.wait_for(up, EVENT_TIMEOUT_S)
            free.put_nowait(agent_id)

        async def worker() -> None:
            while todo:
                await trial(todo.pop())

        done = asyncio.gather(*(worker() for _ in range(args.parallel)))
        # Read its outcome in any case, so an interrupted run ends without asyncio's warning.
        done.add_done_callback(lambda f: f.cancelled() or f.exception())
        try:
            await asyncio.wait([done, follower], return_when=asyncio.FIRST_COMPLETED)
            if follower.done():
                done.cancel()
                follower.result()  # raises what ended the stream
                raise stack.BenchError("the monitor's event stream ended")
            done.result()
        except TimeoutError:
            raise stack.BenchError(
                f"an agent did not reach the expected state within {EVENT_TIMEOUT_S:.0f} s"
            ) from None
        finally:
            follower.cancel()
    return results


def percentile(values: list[float], q: float) -> float:
    """Nearest rank: the smallest value with at least q of the sample at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def main() -> int:
    parser = stack.argument_parser(__doc__, EPILOG)
    parser.add_argument("--agents", type=int, default=48, help="fleet size (default 48)")
    parser.add_argument("--trials", type=int, default=30, help="trials per fault (default 30)")
    parser.add_argument(
        "--parallel",
        type=int,
        default=12,
        help="trials running at once, on different agents (default 12)",
    )
    parser.add_argument(
        "--interval", type=float, default=5.0, help="status interval in seconds (default 5)"
    )
    parser.add_argument(
        "--timeout", type=float, default=3.0, help="status timeout in seconds (default 3)"
    )
    parser.add_argument(
        "--fast-interval",
        type=float,
        default=1.0,
        help="re-probe interval after a failure (default 1)",
    )
    parser.add_argument("--fall", type=int, default=2, help="failures to go down (default 2)")
    args = parser.parse_args()
    if min(args.agents, args.trials, args.parallel, args.fall) < 1:
        parser.error("--agents, --trials, --parallel and --fall must be at least 1")
    if args.parallel > args.agents:
        parser.error("--parallel cannot exceed --agents: each trial needs its own agent")
    options = [
        "--status-interval",
        str(args.interval),
        "--status-timeout",
        str(args.timeout),
        "--fast-interval",
        str(args.fast_interval),
        "--fall",
        str(args.fall),
    ]
    with tempfile.TemporaryDirectory(prefix="detection-") as tmp:
        work = Path(tmp)
        with (
            stack.fleet(work / "fleet", args.agents) as fleet,
            stack.monitor(fleet, work / "monitor.log", *options) as monitor,
        ):
            started = time.monotonic()
            results = asyncio.run(run_trials(fleet, monitor, args))
            took = time.monotonic() - started
    hung_goal = args.interval + args.timeout + args.fall * args.fast_interval
    goals = {"stopped": 1.5, "hang": hung_goal}
    print(
        f"\nstatus interval {args.interval:g} s, timeout {args.timeout:g} s, fast interval "
        f"{args.fast_interval:g} s, fall {args.fall}; {args.agents} agents, "
        f"{args.parallel} trials at once, {took:.0f} s"
    )
    print(
        f"{'fault':<8} {'n':>3} {'min':>6} {'p50':>6} {'p95':>6} {'max':>6} {'goal p95':>9}"
        "  down reasons"
    )
    for fault in FAULTS:
        times = [t for t, _ in results[fault]]
        reasons: dict[str, int] = {}
        for _, reason in results[fault]:
            reasons[reason] = reasons.get(reason, 0) + 1
        print(
            f"{fault:<8} {len(times):>3} {min(times):>5.2f}s {percentile(times, 0.5):>5.2f}s "
            f"{percentile(times, 0.95):>5.2f}s {max(times):>5.2f}s {goals[fault]:>8.2f}s  "
            + ", ".join(f"{r} {n}" for r, n in sorted(reasons.items()))
        )
    return 0


if __name__ == "__main__":
    sys.exit(stack.main_guard(main))
