"""What is wrong (or worth a look) in a configuration file, located by file, line and field."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Loc = tuple[str | int, ...]


def loc_to_path(loc: Sequence[str | int]) -> str:
    """``('environments', 0, 'url')`` -> ``environments[0].url``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass(frozen=True, slots=True)
class Problem:
    """An error: the file cannot be used as it is.

    ``message`` says what is wrong and what was expected; it never holds a secret value.
    """

    code: str
    message: str
    file: str
    path: str = ""
    line: int | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class Finding(Problem):
    """Advisory: the file is valid, but an operator should look at this."""
