"""What a process costs, read from /proc: CPU time, resident memory, its process tree.

CPU time is ``utime + stime`` of ``/proc/PID/stat`` (fields 14 and 15, in clock ticks), so a
figure covers exactly the process measured, not the machine. A process that has exited
reads as zero rather than raising: benchmarks read trees whose workers may come and go.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ")".
    return text.rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far (its own, not its children's)."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    # After the command name, field 3 (state) is index 0: utime is field 14, stime field 15.
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_pids(root: int) -> list[int]:
    """``root`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat_fields(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children.get(pid, []))
    return pids


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, summed over all cores."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already inside user time
    return (total - idle) / TICKS_PER_S, total / TICKS_PER_S


@dataclass(frozen=True, slots=True)
class CpuReading:
    """CPU seconds of some processes and of the whole machine at one moment."""

    at: float  # time.monotonic()
    processes: dict[str, float]
    machine_busy: float

    def cores_since(self, earlier: CpuReading, name: str) -> float:
        """Average cores a process used between ``earlier`` and this reading."""
        return (self.processes[name] - earlier.processes[name]) / (self.at - earlier.at)

    def seconds_since(self, earlier: CpuReading, name: str) -> float:
        return self.processes[name] - earlier.processes[name]

    def machine_cores_since(self, earlier: CpuReading) -> float:
        return (self.machine_busy - earlier.machine_busy) / (self.at - earlier.at)


def read_cpu(trees: dict[str, int], at: float, alone: dict[str, int] | None = None) -> CpuReading:
    """CPU seconds of each named process tree (root pid), of each process in ``alone``
    (without its descendants: the benchmark itself, whose children are measured apart),
    and of the machine."""
    processes = {
        name: sum(cpu_seconds(pid) for pid in tree_pids(root)) for name, root in trees.items()
    }
    processes.update({name: cpu_seconds(pid) for name, pid in (alone or {}).items()})
    return CpuReading(at, processes, machine_busy_seconds()[0])
