"""The fault journal: every fault is on disk before it is applied, and until it is reverted.

``journal.jsonl`` in a run's output folder is append-only, one JSON object a line, flushed
and fsynced before the driver is called:

    {"op": "inject", "t": ..., "fault": {...}, "driver_settings": {...}}
    {"op": "injected", "t": ..., "fault_id": "..."}              # the driver returned
    {"op": "revert", "t": ..., "fault_id": "...", "error": null}  # reverted (or why not)

A fault with an ``inject`` line and no successful ``revert`` line may be applied: the run
controller reverts it on every way out, and after a crash or SIGKILL ``agentha chaos
recover`` reads the journal and reverts it with a driver built from the recorded settings.
Driver settings name files and environment variables only, never secret values, so the
journal holds no secret.

Each running experiment also leaves a pointer in the state folder (``active/``), so
``agentha chaos recover`` with no argument finds every run that did not end cleanly.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos.errors import ChaosError
from chaos.faults import Fault

JOURNAL = "journal.jsonl"


def state_dir() -> Path:
    """Where pointers to active runs live: $AGENTHA_STATE_DIR, else the XDG state folder."""
    explicit = os.environ.get("AGENTHA_STATE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "agentha"


@dataclass(frozen=True)
class Pending:
    """A fault the journal says may still be applied."""

    fault: Fault
    driver_settings: Mapping[str, Any]
    injected: bool  # False: the driver was called but never returned (it may be half applied)
    last_error: str | None  # the last revert attempt's error, if one failed


class Journal:
    """Appends to one run's journal; registers the run as active until ``close(clean=True)``."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / JOURNAL
        self._pointer = _pointer_for(self.path)
        try:
            self._pointer.parent.mkdir(parents=True, exist_ok=True)
            self._pointer.write_text(str(self.path.resolve()) + "\n", encoding="utf-8")
            self.path.touch()
        except OSError as exc:
            raise ChaosError(f"cannot write the fault journal: {exc.strerror or exc}") from None

    def intend(self, fault: Fault, driver_settings: Mapping[str, Any]) -> None:
        self._append(
            {"op": "inject", "fault": fault.to_json(), "driver_settings": dict(driver_settings)}
        )

    def injected(self, fault: Fault) -> None:
        self._append({"op": "injected", "fault_id": fault.id})

    def reverted(self, fault: Fault, error: str | None = None) -> None:
        append(self.path, {"op": "revert", "fault_id": fault.id, "error": error})

    def note(self, text: str) -> None:
        self._append({"op": "note", "text": text})

    def close(self, *, clean: bool) -> None:
        """A clean close (nothing left applied) drops the active pointer."""
        if clean:
            forget(self.path)

    def _append(self, entry: dict[str, Any]) -> None:
        append(self.path, entry)


def append(path: Path, entry: dict[str, Any]) -> None:
    """One line, on disk (fsynced) before the caller goes on to touch anything."""
    line = json.dumps({"t": time.time(), **entry}, separators=(",", ":")) + "\n"
    try:
        with path.open("a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise ChaosError(f"{path}: cannot write the fault journal: {exc.strerror or exc}") from None


def pending(path: Path) -> list[Pending]:
    """Faults with an ``inject`` line and no successful ``revert``, in journal order.

    A torn last line (the process died while writing it) is ignored: it was written before
    the driver was called, so that driver call never happened.
    """
    faults: dict[str, Pending] = {}
    for entry in _entries(path):
        op = entry.get("op")
        if op == "inject":
            fault = Fault.from_json(entry["fault"])
            faults[fault.id] = Pending(fault, entry.get("driver_settings") or {}, False, None)
        elif op == "injected" and entry.get("fault_id") in faults:
            item = faults[entry["fault_id"]]
            faults[item.fault.id] = Pending(item.fault, item.driver_settings, True, None)
        elif op == "revert" and entry.get("fault_id") in faults:
            item = faults[entry["fault_id"]]
            if entry.get("error"):
                faults[item.fault.id] = Pending(
                    item.fault, item.driver_settings, item.injected, str(entry["error"])
                )
            else:
                del faults[item.fault.id]
    return list(faults.values())


def active_journals() -> list[Path]:
    """Journals of runs that did not end cleanly, as their pointers say."""
    folder = state_dir() / "active"
    out = []
    for pointer in sorted(folder.glob("*.run")) if folder.is_dir() else []:
        with contextlib.suppress(OSError):
            out.append(Path(pointer.read_text(encoding="utf-8").strip()))
    return out


def forget(path: Path) -> None:
    """Drop a journal's active pointer (every fault in it is reverted)."""
    with contextlib.suppress(OSError):
        _pointer_for(path).unlink()


def _pointer_for(journal: Path) -> Path:
    digest = hashlib.sha256(str(journal.resolve()).encode()).hexdigest()[:16]
    return state_dir() / "active" / f"{digest}.run"


def _entries(path: Path) -> Iterator[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ChaosError(f"{path}: cannot read the journal: {exc.strerror or exc}") from None
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            if not isinstance(entry, dict):
                raise ValueError
        except ValueError:
            if number == len(lines):
                return  # torn last line
            raise ChaosError(f"{path}:{number}: not a journal line") from None
        yield entry
