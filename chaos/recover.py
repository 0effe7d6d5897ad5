"""``agentha chaos recover``: revert what a crashed or killed run left applied.

The journal alone says what to do: each pending fault with the driver settings it was
injected with. Every revert is appended to the same journal, so running recover twice is
harmless, and a journal with nothing left applied drops its active pointer. Once nothing is
left applied, the monitor the run reported to is told the run ended (aborted), so a run it
marked lost clears.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chaos.announce import Announcer, build_report
from chaos.drivers import make_driver
from chaos.errors import ChaosError
from chaos.journal import JOURNAL, append, forget, pending
from chaos.record import RunRecord
from monitor.client import MonitorClient

RECOVER_TIMEOUT_S = 30.0


@dataclass
class Recovered:
    journal: Path
    reverted: list[str]
    failed: list[str]  # "FAULT_ID: why", one line each


def journal_path(given: Path) -> Path:
    """A run folder or a journal file, as the user gave it."""
    path = given / JOURNAL if given.is_dir() else given
    if not path.is_file():
        raise ChaosError(f"{given}: no fault journal there (expected a run folder or {JOURNAL})")
    return path


async def recover(path: Path, say: Callable[[str], None] = print) -> Recovered:
    """Revert every fault the journal still holds as applied."""
    result = Recovered(path, [], [])
    items = pending(path)
    if not items:
        forget(path)
        await _report_ended(path.parent / "run.json", say)
        return result
    say(f"{path}: {len(items)} fault(s) may still be applied")
    for item in items:
        fault = item.fault
        try:
            driver = make_driver(fault.driver, item.driver_settings)
        except ChaosError as exc:
            result.failed.append(f"{fault.id}: {exc}")
            append(path, {"op": "revert", "fault_id": fault.id, "error": str(exc)})
            continue
        try:
            async with asyncio.timeout(RECOVER_TIMEOUT_S):
                await driver.revert(fault)
        except (ChaosError, TimeoutError) as exc:
            why = str(exc) or f"no answer within {RECOVER_TIMEOUT_S:g} s"
            result.failed.append(f"{fault.id}: {why}")
            append(path, {"op": "revert", "fault_id": fault.id, "error": why})
            say(f"  FAILED {driver.describe(fault)}: {why}")
        else:
            result.reverted.append(fault.id)
            append(path, {"op": "revert", "fault_id": fault.id, "error": None})
            say(f"  reverted {driver.describe(fault)}")
        finally:
            await driver.close()
    if not result.failed:
        forget(path)
        await _report_ended(path.parent / "run.json", say)
    return result


async def _report_ended(run_json: Path, say: Callable[[str], None]) -> None:
    """Tell the monitor the run ended (aborted), if its record says it never did. Best
    effort: a record from before runs reported, or no token, only skips this."""
    try:
        record = RunRecord.read(run_json)
    except (OSError, ValueError, TypeError, KeyError):
        return
    if record.verdict != "running" or not record.run_id or not record.monitor_url:
        return
    token = None
    if record.monitor_token_env:
        token = os.environ.get(record.monitor_token_env)
        if not token:
            say(f"monitor: not told run {record.run_id} ended: "
                f"{record.monitor_token_env} is not set")  # fmt: skip
            return
    report = build_report(
        experiment=Path(record.experiment).stem,
        title=record.title,
        group=record.group,
        phase="done",
        started=record.started,
        faults=(),
        verdict="aborted",
    )
    async with MonitorClient(record.monitor_url, token=token) as client:
        announcer = Announcer(client, record.run_id, lambda: report, say=say, notes=[])
        await announcer.finish()
    if announcer.sent:
        say(f"monitor: run {record.run_id} reported ended (aborted)")
