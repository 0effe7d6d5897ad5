"""The run controller: preflight, warm-up, baseline, faults, recovery; always rolled back.

One run, start to end:

1. preflight: the monitor must say the group is steady (allowed status, every agent probed);
2. Locust starts in its own process (and its own session: Ctrl-C reaches us, not it);
3. warm-up, then the baseline window;
4. the method's steps: each fault is checked by the blast-radius guard against live monitor
   state, written to the journal, injected, held, reverted;
5. the recovery window; Locust stops; the verdict comes from the timeline, the monitor's
   events and the fault windows.

Faults are reverted on every way out: the normal end, a failed guard or abort condition,
an error, Ctrl-C and SIGTERM. What a crash leaves applied stays in the journal for
``agentha chaos recover``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sys
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos import guard, measures
from chaos.announce import Announcer, build_report, new_run_id
from chaos.errors import ChaosError, DriverError
from chaos.experiment import FaultStep, PauseStep, RollingStep
from chaos.faults import Fault
from chaos.journal import Journal
from chaos.plan import Plan
from chaos.record import (
    EXIT_ABORTED,
    EXIT_CODES,
    EXIT_ERROR,
    EXIT_PASS,
    FaultWindow,
    Phase,
    RunRecord,
    StateChange,
)
from chaos.targets import select_targets
from loadtests.errors import LoadError
from loadtests.run import LocustProcess
from loadtests.timeline import TimelineTail, read_timeline
from monitor.client import MonitorClient, MonitorClientError

EXIT_INTERRUPTED = 130
RUN_JSON = "run.json"
# How long all reverts together may take on the way out before we give up on them (they
# stay in the journal for `agentha chaos recover`).
REVERT_TIMEOUT_S = 10.0
PROGRESS_EVERY_S = 1.0


class Abort(Exception):
    """Stop the method now and roll back; ``exit_code`` says how the run ends."""

    def __init__(self, reason: str, exit_code: int = EXIT_ABORTED) -> None:
        super().__init__(reason)
        self.reason = reason
        self.exit_code = exit_code


@dataclass
class Options:
    out: Path
    say: Callable[[str], None] = print
    live: bool = False  # rewrite one progress line (a terminal) instead of printing lines
    token: str | None = None  # the monitor API token, from the environment


class Controller:
    def __init__(self, plan: Plan, options: Options) -> None:
        self.plan = plan
        self.exp = plan.experiment
        self.options = options
        self.out = options.out
        started = time.time()
        self.record = RunRecord(
            title=self.exp.title,
            experiment=str(self.exp.path),
            group=self.exp.group,
            started=started,
            notes=[f"seed {plan.seed}"],
            run_id=new_run_id(started),
            monitor_url=self.exp.monitor.url,
            monitor_token_env=self.exp.monitor.token_env,
        )
        self.applied: dict[str, Fault] = {}
        self.states: dict[str, str] = {}  # agent id -> state, from the monitor
        self.group_status = "unknown"
        self.status_before = "unknown"
        self.phase = "preflight"
        self.journal: Journal | None = None
        self.locust: LocustProcess | None = None
        self.abort: Abort | None = None
        self._main: asyncio.Task[None] | None = None
        self._last_progress = 0.0
        self._timeline = plan.load.out / "timeline.jsonl"
        self._tail = TimelineTail(self._timeline)
        self._recent: list[guard.LoadSecond] = []  # the last seconds of load, read by _watch
        self._announcer: Announcer | None = None

    # -- the run -------------------------------------------------------------------------

    async def run(self) -> RunRecord:
        loop = asyncio.get_running_loop()
        self.out.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(self.out)
        self._save()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._interrupt, signum)
        async with MonitorClient(self.exp.monitor.url, token=self.options.token) as client:
            self._main = asyncio.current_task()
            follower = watcher = None
            self._say(f"run {self.record.run_id}: reported to the monitor at {client.base_url}")
            self._announcer = Announcer(
                client, self.record.run_id, self._report, say=self._say, notes=self.record.notes
            )
            self._announcer.start()
            try:
                first = await self._preflight(client)
                follower = asyncio.create_task(self._follow(client, first))
                self._start_load()
                watcher = asyncio.create_task(self._watch())
                await self._phase("warmup", self.exp.timings.warmup_s)
                await self._phase("baseline", self.exp.timings.baseline_s)
                self._begin("fault")
                for planned in self.plan.steps:
                    await self._step(client, planned)
                await self._phase("recovery", self.exp.timings.recovery_s)
            except asyncio.CancelledError:
                if self.abort is None:
                    raise
            except Abort as exc:
                self.abort = exc
            except (ChaosError, LoadError, MonitorClientError, OSError) as exc:
                self.abort = Abort(str(exc), EXIT_ERROR)
            finally:
                # A second Ctrl-C must not cut the rollback short.
                for signum in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(signum, self._say, "rolling back: please wait")
                if watcher is not None:
                    watcher.cancel()
                await self._roll_back()
                self._end_phase()
                await self._stop_load()
                await asyncio.sleep(0.5)  # the last events of the recovery reach the follower
                if follower is not None:
                    follower.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await follower
                for driver in self.plan.drivers.values():
                    await driver.close()
                self._judge()
                await self._announcer.finish()
                self.journal.close(clean=not self.applied)
                self._save()
                for signum in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(signum)
        return self.record

    def _interrupt(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self.abort is None:
            self.abort = Abort(f"interrupted by {name}", EXIT_INTERRUPTED)
        if self._main is not None:
            self._main.cancel()

    def _fire(self, abort: Abort) -> None:
        """An abort condition from a background task: roll back now."""
        if self.abort is None:
            self.abort = abort
            self._say(f"abort: {abort.reason}")
            if self._main is not None:
                self._main.cancel()

    # -- phases --------------------------------------------------------------------------

    async def _preflight(self, client: MonitorClient) -> int:
        """Wait until the monitor says the group is steady; returns the last event seq."""
        self._begin("preflight")
        deadline = time.monotonic() + self.exp.timings.preflight_timeout_s
        why: str | None = "no answer yet"
        snapshot: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                snapshot = await client.snapshot()
            except MonitorClientError as exc:
                why = str(exc)
            else:
                why = guard.steady(snapshot, self.exp.group, self.exp.hypothesis.group_status)
                if why is None:
                    break
            await asyncio.sleep(0.5)
        if why is not None:
            raise Abort(f"preflight: not steady: {why}")
        states, _ = guard.group_view(snapshot, self.exp.group)
        self.states.update(states)
        self.group_status = self.status_before = snapshot["groups"][self.exp.group]["status"]
        # Where every lane of the report's chart starts.
        now = time.time()
        for subject, kind, state in [
            *((agent, "agent", state) for agent, state in states.items()),
            (self.exp.group, "group", self.group_status),
        ]:
            self.record.states.append(StateChange(now, subject, kind, "", state, "at preflight"))
        self._say(f"preflight: {self.exp.group} is {self.group_status}, {self._agent_counts()}")
        return int(snapshot.get("last_event", 0))

    async def _phase(self, name: str, seconds: float) -> None:
        self._begin(name)
        await self._hold(seconds)

    def _begin(self, name: str) -> None:
        self._end_phase()
        self.phase = name
        self.record.phases.append(Phase(name, time.time()))
        self._say(f"phase {name}")
        self._save()
        self._announce()

    def _end_phase(self) -> None:
        if self.record.phases and self.record.phases[-1].end is None:
            self.record.phases[-1].end = time.time()

    async def _hold(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            await asyncio.sleep(min(left, PROGRESS_EVERY_S))
            self._progress()

    async def _step(self, client: MonitorClient, planned: Any) -> None:
        step = planned.step
        if isinstance(step, PauseStep):
            self._say(f"step {planned.index + 1}: pause {step.duration_s:g} s")
            await self._hold(step.duration_s)
        elif isinstance(step, FaultStep):
            await self._guard(client, planned.faults, step.action)
            await asyncio.gather(*(self._inject(f, planned.index) for f in planned.faults))
            await self._hold(step.duration_s)
            await asyncio.gather(*(self._revert(f) for f in planned.faults))
        else:
            assert isinstance(step, RollingStep)
            for drain, restart in planned.rolling:
                await self._roll_one(client, planned.index, step, drain, restart)

    async def _roll_one(
        self, client: MonitorClient, index: int, step: RollingStep, drain: Fault | None,
        restart: Fault,
    ) -> None:  # fmt: skip
        await self._guard(client, [restart], f"rolling {step.action}")
        if drain is not None:
            await self._inject(drain, index)
            await self._hold(step.drain_s)
        await self._inject(restart, index)
        await self._hold(step.hold_s)
        await self._revert(restart)
        if drain is not None:
            # Back, but still drained: wait until the monitor sees it answer (paused).
            await self._wait_state(restart.agent, {"paused", *guard.TAKES_TRAFFIC}, step.settle_s)
            await self._revert(drain)
        await self._wait_state(restart.agent, guard.TAKES_TRAFFIC, step.settle_s)

    async def _guard(self, client: MonitorClient, faults: list[Fault], what: str) -> None:
        snapshot = await client.snapshot()
        targets = [f.agent for f in faults]
        names = ", ".join(t.rsplit("/", 1)[1] for t in targets)
        decision = guard.check_fault(
            snapshot,
            self.exp.group,
            targets,
            {f.agent for f in self.applied.values()},
            allow_outage=self.exp.guards.allow_outage,
            what=f"{what} on {names}",
        )
        self.record.guard.append(decision.line)
        self._say(f"guard: {decision.line}")
        if not decision.allowed:
            raise Abort(f"guard {decision.line}")

    async def _inject(self, fault: Fault, step: int) -> None:
        driver = self.plan.drivers[fault.driver]
        window = FaultWindow(
            fault_id=fault.id,
            driver=fault.driver,
            action=fault.action,
            agent=fault.agent,
            description=driver.describe(fault),
            step=step,
        )
        self.record.faults.append(window)
        assert self.journal is not None
        self.journal.intend(fault, driver.settings)
        self.applied[fault.id] = fault
        window.injected_at = time.time()
        self._say(f"inject: {window.description}")
        try:
            await driver.inject(fault)
        except DriverError as exc:
            window.error = f"inject: {exc}"
            raise Abort(f"{window.description}: {exc}", EXIT_ERROR) from None
        finally:
            self._announce()  # half applied counts as held, as in the journal
        self.journal.injected(fault)
        self._save()

    async def _revert(self, fault: Fault) -> None:
        if fault.id not in self.applied:
            return
        driver = self.plan.drivers[fault.driver]
        window = next(w for w in self.record.faults if w.fault_id == fault.id)
        assert self.journal is not None
        try:
            await driver.revert(fault)
        except DriverError as exc:
            window.error = f"revert: {exc}"
            self.journal.reverted(fault, str(exc))
            self._say(f"revert FAILED: {window.description}: {exc}")
            return
        window.reverted_at = time.time()
        del self.applied[fault.id]
        self._announce()
        self.journal.reverted(fault)
        self._say(f"revert: {window.description}")
        self._save()

    async def _roll_back(self) -> None:
        """Revert what is still applied, all at once, then the explicit rollbacks."""
        if self.applied:
            pending = list(self.applied.values())
            self._say(f"rollback: reverting {len(pending)} fault(s)")
            try:
                async with asyncio.timeout(REVERT_TIMEOUT_S):
                    await asyncio.gather(*(self._revert(f) for f in pending))
            except TimeoutError:
                self._say("rollback: reverts did not finish in time; run 'agentha chaos recover'")
        for rollback in self.exp.rollbacks:
            await self._explicit_rollback(rollback)
        if self.applied:
            left = ", ".join(sorted(self.applied))
            self.record.notes.append(f"still applied after rollback: {left}")
            self._say(f"rollback: still applied: {left}; run 'agentha chaos recover {self.out}'")

    async def _explicit_rollback(self, rollback: Any) -> None:
        if rollback.kind == "command":
            try:
                proc = await asyncio.create_subprocess_shell(
                    rollback.command,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                    start_new_session=True,
                )
                async with asyncio.timeout(rollback.timeout_s):
                    code = await proc.wait()
                line = f"rollback command exited {code}"
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                line = f"rollback command timed out after {rollback.timeout_s:g} s"
            except OSError as exc:
                line = f"rollback command could not start: {exc.strerror or exc}"
        else:
            driver = self.plan.drivers[rollback.driver]
            reset = getattr(driver, "reset", None)
            if reset is None:
                line = f"rollback reset: driver {rollback.driver} has no reset"
            else:
                names = [agent.rsplit("/", 1)[1] for agent in self.plan.agents]
                rng = random.Random(self.plan.seed)  # noqa: S311 - choosing targets
                chosen = select_targets(rollback.targets, names, rng)
                try:
                    await reset([f"{self.exp.group}/{name}" for name in chosen])
                    line = f"rollback reset through {rollback.driver}: done"
                except DriverError as exc:
                    line = f"rollback reset through {rollback.driver} failed: {exc}"
        self.record.notes.append(line)
        self._say(line)

    async def _wait_state(self, agent: str, states: Collection[str], within_s: float) -> None:
        end = time.monotonic() + within_s
        while self.states.get(agent) not in states:
            if time.monotonic() >= end:
                self._say(
                    f"{agent}: still {self.states.get(agent, 'unknown')} after {within_s:g} s; "
                    "going on"
                )
                return
            await asyncio.sleep(0.2)
            self._progress()

    # -- background: monitor events, load, abort conditions --------------------------------

    async def _follow(self, client: MonitorClient, after: int) -> None:
        agents = set(self.plan.agents)
        try:
            async for event in client.events(after=after, retry_delay=0.5):
                subject = event.get("id")
                if event.get("kind") == "agent" and subject in agents:
                    self.states[subject] = event["new"]
                elif event.get("kind") == "group" and subject == self.exp.group:
                    self.group_status = event["new"]
                else:
                    continue
                self.record.states.append(
                    StateChange(
                        t=float(event["time"]),
                        subject=subject,
                        kind=event["kind"],
                        old=event["old"],
                        new=event["new"],
                        reason=event.get("reason", ""),
                    )
                )
                if (
                    self.exp.guards.abort_on_unavailable
                    and self.group_status == "unavailable"
                    and self.phase not in ("preflight", "warmup")
                ):
                    self._fire(Abort(f"group {self.exp.group} became unavailable"))
        except MonitorClientError as exc:
            self.record.notes.append(f"event stream ended: {exc}")

    def _start_load(self) -> None:
        self.plan.load.out.mkdir(parents=True, exist_ok=True)
        self.locust = LocustProcess(self.plan.load, own_session=True)
        self.locust.start()
        self._say(f"load: {self.plan.load.shape.spec()}; Locust output in {self.plan.load.out}")

    async def _stop_load(self) -> None:
        if self.locust is not None:
            await asyncio.to_thread(self.locust.stop)

    async def _watch(self) -> None:
        """Abort conditions, checked every second until the method ends."""
        guards = self.exp.guards
        started = time.monotonic()
        while True:
            await asyncio.sleep(1.0)
            if self.locust is not None and self.locust.poll() is not None:
                line = self.locust.error_line() or f"exited with {self.locust.poll()}"
                self._fire(Abort(f"Locust stopped early: {line}", EXIT_ERROR))
                return
            if time.monotonic() - started > guards.max_run_s:
                self._fire(
                    Abort(f"the run took longer than guards.max_run_s {guards.max_run_s:g} s")
                )
                return
            self._read_load()
            if self.phase in ("warmup", "preflight"):
                continue
            recent = self._recent[-(guards.abort_over_s + 1) : -1]  # whole seconds only
            why = guard.load_abort(
                recent, below=guards.abort_success_below, over_s=guards.abort_over_s
            )
            if why is not None:
                self._fire(Abort(why))
                return

    def _read_load(self) -> None:
        """The new seconds of the timeline, once a second (for aborts and progress)."""
        try:
            seconds = self._tail.read()
        except LoadError:
            return
        self._recent = [
            guard.LoadSecond(
                sum(t.requests for t in s.endpoints.values()),
                sum(t.fail for t in s.endpoints.values()),
                s.users,
            )
            for s in seconds[-(self.exp.guards.abort_over_s + 2) - 5 :]
        ]

    # -- the verdict ---------------------------------------------------------------------

    def _judge(self) -> None:
        record = self.record
        record.ended = time.time()
        seconds = []
        if self._timeline.exists():
            try:
                seconds = read_timeline(self._timeline)
            except LoadError as exc:
                record.notes.append(str(exc))
        record.timeline = measures.record_seconds(seconds)
        hypothesis = self.exp.hypothesis
        for window in record.faults:
            measures.fault_times(window, record.timeline, record.states)
        phases = {p.name: p for p in record.phases}
        checks = []
        for name in ("baseline", "fault", "recovery"):
            phase = phases.get(name)
            if phase is None:
                continue
            members = measures.in_phase(seconds, phase)
            record.stats.append(measures.phase_stats(name, members))
            if name in hypothesis.judge_phases and self.abort is None:
                checks += measures.threshold_checks(
                    name, members, self.plan.thresholds, hypothesis.window_s
                )
        if "fault" in phases and self.abort is None:
            checks.append(
                measures.group_status_check(
                    record, phases["fault"], hypothesis.group_status, self.status_before
                )
            )
        checks += measures.time_checks(
            record.faults,
            max_detection_s=hypothesis.max_detection_s,
            max_failover_s=hypothesis.max_failover_s,
            max_recovery_s=hypothesis.max_recovery_s,
        )
        record.checks = checks
        if self.abort is not None:
            record.verdict = "error" if self.abort.exit_code == EXIT_ERROR else "aborted"
            record.reason = self.abort.reason
            record.exit_code = self.abort.exit_code
        else:
            record.verdict = "pass" if all(c.passed for c in checks) else "fail"
            record.exit_code = EXIT_CODES[record.verdict]

    # -- output --------------------------------------------------------------------------

    def _report(self) -> dict[str, Any]:
        """What the monitor is told now: the phase, the faults held, at the end the verdict."""
        done = self.record.verdict != "running"
        return build_report(
            experiment=getattr(self.exp, "name", None) or self.exp.path.stem,
            title=self.exp.title,
            group=self.exp.group,
            phase="done" if done else self.phase,
            started=self.record.started,
            faults=[(f.agent, f.action) for f in self.applied.values()],
            verdict=self.record.verdict if done else None,
        )

    def _announce(self) -> None:
        if self._announcer is not None:
            self._announcer.changed()

    def _save(self) -> None:
        with contextlib.suppress(OSError):
            self.record.write(self.out / RUN_JSON)

    def _say(self, line: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        if self.options.live:
            sys.stdout.write("\r\033[K")
        self.options.say(f"{stamp} {line}")

    def _agent_counts(self) -> str:
        counts: dict[str, int] = {}
        for agent in self.plan.agents:
            state = self.states.get(agent, "unknown")
            counts[state] = counts.get(state, 0) + 1
        return "agents " + " ".join(f"{k} {v}" for k, v in sorted(counts.items()))

    def _applied_text(self) -> str:
        return ", ".join(self.plan.drivers[f.driver].describe(f) for f in self.applied.values())

    def _progress(self) -> None:
        now = time.monotonic()
        every = PROGRESS_EVERY_S if self.options.live else 5.0
        if now - self._last_progress < every:
            return
        self._last_progress = now
        recent = self._recent[-5:-1]
        requests = sum(s.requests for s in recent)
        ratio = f"{(requests - sum(s.fail for s in recent)) / requests:.1%}" if requests else "-"
        elapsed = time.time() - self.record.started
        line = (
            f"[{elapsed:5.0f} s] {self.phase:<9} success {ratio} ({requests} req/4 s), "
            f"group {self.group_status}, {self._agent_counts()}"
            + (f"; fault: {applied}" if (applied := self._applied_text()) else "")
        )
        if self.options.live:
            sys.stdout.write("\r\033[K" + line[:200])
            sys.stdout.flush()
        else:
            self.options.say(line)


async def run_plan(plan: Plan, options: Options) -> RunRecord:
    return await Controller(plan, options).run()


async def dry_run(plan: Plan, token: str | None, say: Callable[[str], None] = print) -> int:
    """The plan and every guard decision against live monitor state; nothing is touched."""
    for line in plan.lines():
        say(line)
    exp = plan.experiment
    try:
        async with MonitorClient(exp.monitor.url, token=token) as client:
            snapshot = await client.snapshot()
    except MonitorClientError as exc:
        say(f"guard: cannot read the monitor ({exc}); decisions unknown")
        return EXIT_ERROR
    refused = 0
    why = guard.steady(snapshot, exp.group, exp.hypothesis.group_status)
    say(f"preflight: {'steady now' if why is None else 'NOT steady now: ' + why}")
    for planned in plan.steps:
        batches: list[tuple[str, list[str]]] = []
        if isinstance(planned.step, FaultStep):
            batches = [(planned.step.action, [f.agent for f in planned.faults])]
        elif isinstance(planned.step, RollingStep):
            action = f"rolling {planned.step.action}"
            batches = [(action, [restart.agent]) for _drain, restart in planned.rolling]
        for action, targets in batches:
            names = ", ".join(t.rsplit("/", 1)[1] for t in targets)
            decision = guard.check_fault(
                snapshot, exp.group, targets, (), allow_outage=exp.guards.allow_outage,
                what=f"step {planned.index + 1}: {action} on {names}",
            )  # fmt: skip
            refused += not decision.allowed
            say(f"guard: {decision.line}")
    say("dry run: nothing was changed")
    return EXIT_ABORTED if refused or why is not None else EXIT_PASS
