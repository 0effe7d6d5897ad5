"""One load run: Locust headless in its own process, then the timeline judged window by window.

``run_load`` is what ``agentha load run`` (and later the chaos run controller) calls. It runs
in an ordinary process and never imports Locust: Locust's gevent monkey-patching must not
reach the caller, and a Locust that crashes must not take the caller with it. Secrets go to
Locust only through the environment it inherits, never on its command line or in a file.

Files in the output folder: ``timeline.jsonl`` (``loadtests.timeline``), ``verdict.json``,
``run.json`` (what was asked), ``locust_totals.json`` (Locust's final counts),
``locust_stats.csv`` and the other ``locust_*.csv``,
``report.html``, ``locust.log`` and ``locust.out`` (Locust's own summary).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loadtests.errors import LoadConfigError, LoadRunError
from loadtests.plan import TOKEN_ENDPOINT, LoadPlan, load_plan
from loadtests.shapes import Shape
from loadtests.thresholds import Threshold, Verdict, evaluate
from loadtests.timeline import Tally, read_timeline, total_of, totals

EXIT_PASS = 0
EXIT_THRESHOLD_FAILED = 1
EXIT_COULD_NOT_RUN = 2

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
# Time Locust gets beyond the shape's duration to start, stop and write its files.
GRACE_S = 60.0
TIMELINE = "timeline.jsonl"
LOCUST_TOTALS = "locust_totals.json"  # Locust's final counts per name (see timeline_plugin)


@dataclass(frozen=True)
class RunSettings:
    inventory: Path
    group: str  # ENV/GROUP
    shape: Shape
    thresholds: tuple[Threshold, ...]
    window_s: int
    out: Path
    processes: int = 0  # Locust worker processes; 0: one process, -1: one per core
    pacing_s: float = 1.0
    request_timeout_s: float = 10.0
    host: str | None = None  # instead of the group's entrypoint


@dataclass
class RunResult:
    exit_code: int
    verdict: Verdict
    endpoints: dict[str, Tally]
    seconds: int

    @property
    def total(self) -> Tally:
        return total_of(self.endpoints.values())


def default_out(group: str, now: datetime | None = None) -> Path:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return Path("load-runs") / f"{group.replace('/', '-')}-{stamp}"


def locust_command(settings: RunSettings) -> list[str]:
    out = settings.out
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--inventory",
        str(settings.inventory),
        "--group",
        settings.group,
        "--shape",
        settings.shape.spec(),
        "--pacing",
        f"{settings.pacing_s:g}",
        "--request-timeout",
        f"{settings.request_timeout_s:g}",
        "--timeline",
        str(out / TIMELINE),
        "--totals",
        str(out / LOCUST_TOTALS),
        "--csv",
        str(out / "locust"),
        "--html",
        str(out / "report.html"),
        "--logfile",
        str(out / "locust.log"),
        "--loglevel",
        "WARNING",
        "--only-summary",
    ]
    if settings.processes:
        command += ["--processes", str(settings.processes)]
    if settings.host:
        command += ["--host", settings.host]
    return command


def check_settings(settings: RunSettings) -> LoadPlan:
    """Everything that can be refused before Locust starts (``LoadConfigError``)."""
    plan = load_plan(settings.inventory, settings.group)
    names = {e.name for e in plan.endpoints} | {TOKEN_ENDPOINT}
    for threshold in settings.thresholds:
        if threshold.endpoint is not None and threshold.endpoint not in names:
            raise LoadConfigError(
                f"threshold {threshold.text!r}: group {plan.group} has no endpoint "
                f"{threshold.endpoint!r}; expected one of {', '.join(sorted(names))}"
            )
    if (settings.out / TIMELINE).exists():
        raise LoadConfigError(f"{settings.out} already holds a run; choose another --out folder")
    if importlib.util.find_spec("locust") is None:
        raise LoadRunError("Locust is not installed: pip install 'locust>=2.40,<3'")
    return plan


def run_load(settings: RunSettings, say: Callable[[str], None] = print) -> RunResult:
    """Run Locust for the shape's duration, judge the timeline, write verdict.json."""
    plan = check_settings(settings)
    out = settings.out
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LoadConfigError(f"--out {out}: {exc.strerror or exc}") from None
    _write_json(out / "run.json", _describe(settings, plan))
    say(
        f"agentha load: {plan.group} through {settings.host or plan.base_url}, "
        f"{settings.shape.spec()}; results in {out}"
    )
    returncode, error = _run_locust(settings)
    timeline = out / TIMELINE
    if not timeline.exists() or timeline.stat().st_size == 0:
        detail = error or f"Locust exited with {returncode} and wrote no timeline"
        raise LoadRunError(f"{detail} (see {out / 'locust.log'})")
    seconds = read_timeline(timeline)
    verdict = evaluate(seconds, settings.thresholds, settings.window_s)
    endpoints = totals(seconds)
    code = EXIT_PASS if verdict.passed else EXIT_THRESHOLD_FAILED
    result = RunResult(code, verdict, endpoints, len(seconds))
    _write_json(out / "verdict.json", _verdict_json(result))
    for line in summary_lines(result):
        say(line)
    return result


def _run_locust(settings: RunSettings) -> tuple[int, str | None]:
    """Run Locust to its end; (exit code, our error line from its stderr if it printed one)."""
    deadline = settings.shape.duration + GRACE_S
    locust = LocustProcess(settings)
    locust.start()
    try:
        returncode = locust.wait(deadline)
    except subprocess.TimeoutExpired:
        locust.stop()
        raise LoadRunError(f"Locust did not finish within {deadline:g} s; stopped it") from None
    except BaseException:
        locust.stop()  # Ctrl-C: Locust got SIGINT too; give it a moment to write its files
        raise
    return returncode, locust.error_line()


class LocustProcess:
    """Locust headless in its own process: started now, waited for or stopped later.

    ``own_session`` puts Locust in a session of its own, so a Ctrl-C on the terminal reaches
    only the caller, which then stops Locust when it is ready (the chaos run controller
    reverts its faults first and lets Locust write its files after).
    """

    def __init__(self, settings: RunSettings, *, own_session: bool = False) -> None:
        self.settings = settings
        self._own_session = own_session
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = self.settings.out
        with (out / "locust.out").open("wb") as stdout, (out / "locust.err").open("wb") as stderr:
            self._proc = subprocess.Popen(
                locust_command(self.settings),
                stdout=stdout,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                env=os.environ.copy(),
                start_new_session=self._own_session,
                preexec_fn=_parent_death_signal() if self._own_session else None,
            )

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise RuntimeError("Locust was not started")
        return self._proc

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait(self, timeout: float | None = None) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if Locust has not written its files and gone in 15 s."""
        if self._proc is not None and self._proc.poll() is None:
            _stop(self._proc)

    def error_line(self) -> str | None:
        """Our own error line from Locust's stderr, if the locustfile printed one."""
        text = (self.settings.out / "locust.err").read_bytes().decode(errors="replace")
        ours = [
            line.split("error: ", 1)[1]
            for line in text.splitlines()
            if line.startswith("agentha load: error:")
        ]
        return ours[-1] if ours else None


def _parent_death_signal() -> Callable[[], None] | None:
    """For the child, before exec: SIGTERM when its parent dies (Linux ``prctl``), so a
    killed chaos run does not leave load running. Elsewhere Locust ends with its shape."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def summary_lines(result: RunResult) -> list[str]:
    total = result.total
    rate = total.requests / result.seconds if result.seconds else 0.0
    share = total.fail / total.requests * 100 if total.requests else 0.0
    p95 = total.latency.percentile(0.95)
    lines = [
        f"requests {total.requests} ({rate:.1f}/s over {result.seconds} s), "
        f"failed {total.fail} ({share:.2f}%), p95 {_ms(p95)}"
    ]
    width = max((len(name) for name in result.endpoints), default=0)
    for name, tally in sorted(result.endpoints.items()):
        lines.append(
            f"  {name:{width}}  {tally.ok} ok, {tally.fail} failed, "
            f"p95 {_ms(tally.latency.percentile(0.95))}"
        )
    lines += result.verdict.lines()
    word = "passed" if result.exit_code == EXIT_PASS else "thresholds failed"
    lines.append(f"result: {word} (exit {result.exit_code})")
    return lines


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:g} ms"


def _describe(settings: RunSettings, plan: LoadPlan) -> dict[str, Any]:
    return {
        "started": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "inventory": str(settings.inventory),
        "group": plan.group,
        "target": settings.host or plan.base_url,
        "endpoints": [e.name for e in plan.endpoints],
        "shape": settings.shape.spec(),
        "processes": settings.processes,
        "pacing_s": settings.pacing_s,
        "thresholds": [t.text for t in settings.thresholds],
        "window_s": settings.window_s,
    }


def _verdict_json(result: RunResult) -> dict[str, Any]:
    verdict = result.verdict
    return {
        "passed": verdict.passed,
        "exit_code": result.exit_code,
        "window_s": verdict.window_s,
        "windows": verdict.windows,
        "requests": result.total.requests,
        "failures": result.total.fail,
        "thresholds": [
            {
                "threshold": r.threshold.text,
                "passed": r.passed,
                "windows_checked": r.windows_checked,
                "worst": r.worst,
                "failed_windows": [
                    {
                        "window": f.window.index + 1,
                        "start_s": f.window.start,
                        "end_s": f.window.end,
                        "first_t": f.window.first_t,
                        "observed": f.observed,
                    }
                    for f in r.failures
                ],
            }
            for r in verdict.results
        ],
    }


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def check_timeline(path: Path, thresholds: Sequence[Threshold], window_s: int) -> RunResult:
    """Judge an existing timeline (``agentha load check``)."""
    seconds = read_timeline(path)
    if not seconds:
        raise LoadConfigError(f"{path}: the timeline is empty")
    verdict = evaluate(seconds, thresholds, window_s)
    code = EXIT_PASS if verdict.passed else EXIT_THRESHOLD_FAILED
    return RunResult(code, verdict, totals(seconds), len(seconds))


__all__ = [
    "EXIT_COULD_NOT_RUN",
    "EXIT_PASS",
    "EXIT_THRESHOLD_FAILED",
    "LocustProcess",
    "RunResult",
    "RunSettings",
    "check_timeline",
    "default_out",
    "locust_command",
    "run_load",
    "summary_lines",
]
