"""Retention of our own records: delete reports and run folders older than N days.

Only the direct entries of one folder are considered (a run folder goes as a whole), aged by
their modification time. Symbolic links are never followed: a link is removed as a link. A
dry run lists what would go and deletes nothing.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

DAY_S = 86400.0


class RetentionError(Exception):
    """The folder cannot be pruned (missing, not a folder, unreadable); a one-line message."""


@dataclass(frozen=True, slots=True)
class Pruned:
    path: Path
    age_days: float
    deleted: bool  # False in a dry run, or when deletion failed
    error: str | None = None


def prune(
    folder: Path,
    max_age_days: float,
    *,
    dry_run: bool = False,
    now: float | None = None,
    keep: frozenset[str] = frozenset(),
) -> list[Pruned]:
    """Delete the entries of ``folder`` last modified more than ``max_age_days`` ago.

    ``keep`` names entries never to delete (e.g. the run being written). Returns every entry
    that was (or in a dry run would be) deleted, oldest first.
    """
    if max_age_days < 0:
        raise RetentionError(f"retention of {max_age_days:g} days: expected 0 or more")
    if not folder.is_dir():
        raise RetentionError(f"{folder}: not a folder")
    now = time.time() if now is None else now
    cutoff = now - max_age_days * DAY_S
    old = []
    try:
        entries = list(folder.iterdir())
    except OSError as exc:
        raise RetentionError(f"{folder}: cannot list: {exc.strerror or exc}") from None
    for entry in entries:
        if entry.name in keep:
            continue
        try:
            mtime = entry.lstat().st_mtime
        except OSError:
            continue  # gone meanwhile
        if mtime < cutoff:
            old.append((mtime, entry))
    done = []
    for mtime, entry in sorted(old):
        age = (now - mtime) / DAY_S
        if dry_run:
            done.append(Pruned(entry, age, False))
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except OSError as exc:
            done.append(Pruned(entry, age, False, exc.strerror or type(exc).__name__))
            continue
        done.append(Pruned(entry, age, True))
    return done
