"""``agentha chaos recover``: revert what a crashed or killed run left applied.

The journal alone says what to do: each pending fault with the driver settings it was
injected with. Every revert is appended to the same journal, so running recover twice is
harmless, and a journal with nothing left applied drops its active pointer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chaos.drivers import make_driver
from chaos.errors import ChaosError
from chaos.journal import JOURNAL, append, forget, pending

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
    return result
