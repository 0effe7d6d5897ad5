"""The dashboard at scale: CPU share and key-to-screen latency, every agent changing each second.

For each fleet size it starts ``bench/tui_fake_monitor.py`` (its own process: its CPU is not
counted), where every agent gets a new probe result each second and a share of them
(``--flap``: all, or 1%) also changes state, and the real dashboard
(``tui.app.run_dashboard``) in a pseudo-terminal, so Textual draws to a terminal as it would
over SSH. Then:

* **CPU share** — the dashboard process's user+system time over a window, from
  ``/proc/PID/stat``, as a share of one core;
* **key to screen** — a key is written to the terminal and the clock stops when the output
  shows its effect: ``f`` (next state filter) until the filter line reads the new filter,
  ``s`` (next sort column) until it reads the new sort. Every one of those redraws filters
  and sorts the whole fleet;
* **RSS** of the dashboard at the end.

    .venv/bin/python bench/tui_scale.py                 # 1000 and 10000 agents, flap 1 and 0.01
    .venv/bin/python bench/tui_scale.py --agents 1000 --flap 1 --window 10 --keys 10
"""

from __future__ import annotations

import argparse
import fcntl
import os
import signal
import socket
import statistics
import struct
import subprocess
import sys
import termios
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATE_FILTERS = ("all", "problems", "down", "degraded", "paused", "unknown", "up")
SORT_KEYS = ("state", "agent", "age", "latency", "processes", "cert", "tls", "findings")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class Terminal:
    """A process in a pseudo-terminal; its output is drained and timestamped by a thread."""

    def __init__(self, argv: list[str], columns: int, rows: int) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        env = {
            **os.environ,
            "TERM": "xterm-256color",
            "COLUMNS": str(columns),
            "LINES": str(rows),
            "PYTHONPATH": str(ROOT),
        }
        self.proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True, cwd=ROOT
        )
        os.close(slave)
        self.master = master
        self.output = bytearray()
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            with self.lock:
                self.output += chunk

    def mark(self) -> int:
        with self.lock:
            return len(self.output)

    def wait_for(self, text: bytes, since: int, timeout: float) -> float | None:
        """Seconds until ``text`` appears in the output after position ``since``."""
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            with self.lock:
                found = self.output.find(text, since) >= 0
            if found:
                return time.perf_counter() - started
            time.sleep(0.001)
        return None

    def press(self, key: bytes) -> None:
        os.write(self.master, key)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.press(b"q")
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=5)
        os.close(self.master)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - our own http URL
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def run(
    agents: int, flap: float, window: float, keys: int, size: tuple[int, int]
) -> dict[str, object]:
    port = free_port()
    fake = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bench" / "tui_fake_monitor.py"),
            "--agents",
            str(agents),
            "--port",
            str(port),
            "--flap",
            str(flap),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    terminal = None
    try:
        wait_http(url + "/healthz")
        code = f"from tui.app import run_dashboard; run_dashboard({url!r})"
        terminal = Terminal([sys.executable, "-c", code], *size)
        total = f"/{agents} agents".encode()
        if terminal.wait_for(total, 0, 60) is None:
            raise RuntimeError("the dashboard never showed the fleet")
        time.sleep(3)  # past start-up: the first snapshots, the first full redraws
        cpu0, wall0 = terminal.cpu_seconds(), time.monotonic()
        time.sleep(window)
        cpu_share = (terminal.cpu_seconds() - cpu0) / (time.monotonic() - wall0)

        latencies: list[float] = []
        misses = 0
        state, sort = 0, 0
        for index in range(keys):
            if index % 2 == 0:
                state = (state + 1) % len(STATE_FILTERS)
                key, marker = b"f", f"state {STATE_FILTERS[state]} ·"
            else:
                sort = (sort + 1) % len(SORT_KEYS)
                key, marker = b"s", f"sort {SORT_KEYS[sort]}"
            since = terminal.mark()
            terminal.press(key)
            took = terminal.wait_for(marker.encode(), since, 5)
            if took is None:
                misses += 1
            else:
                latencies.append(took)
            time.sleep(0.3 + 0.2 * (index % 3) / 3)  # not in step with the redraw timer
        rss = terminal.rss_mib()
    finally:
        if terminal is not None:
            terminal.stop()
        fake.send_signal(signal.SIGINT)
        try:
            fake.wait(timeout=10)
        except subprocess.TimeoutExpired:
            fake.kill()
    latencies.sort()
    return {
        "agents": agents,
        "cpu_share": cpu_share,
        "key_p50_ms": statistics.median(latencies) * 1000 if latencies else None,
        "key_p95_ms": latencies[int(0.95 * (len(latencies) - 1))] * 1000 if latencies else None,
        "key_max_ms": latencies[-1] * 1000 if latencies else None,
        "keys": len(latencies),
        "missed": misses,
        "rss_mib": rss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--window", type=float, default=20.0, help="CPU window (s)")
    parser.add_argument("--keys", type=int, default=20, help="key presses timed")
    parser.add_argument("--size", default="120x40", help="terminal COLUMNSxROWS")
    parser.add_argument(
        "--flap",
        type=float,
        nargs="+",
        default=[1.0, 0.01],
        help="shares of the agents changing state each second (default 1 0.01)",
    )
    args = parser.parse_args()
    columns, rows = (int(v) for v in args.size.split("x"))
    print(
        f"{'agents':>7} {'flap':>5} {'CPU':>7} {'key p50':>8} {'key p95':>8} {'key max':>8} "
        f"{'keys':>5} {'RSS':>8}"
    )
    for agents in args.agents:
        for flap in args.flap:
            r = run(agents, flap, args.window, args.keys, (columns, rows))
            print(
                f"{r['agents']:>7} {flap:>5g} {r['cpu_share']:>7.1%} {r['key_p50_ms']:>6.0f}ms "
                f"{r['key_p95_ms']:>6.0f}ms {r['key_max_ms']:>6.0f}ms "
                f"{r['keys']:>2}/{r['keys'] + r['missed']:<2} {r['rss_mib']:>5.0f}MiB",
                flush=True,
            )


if __name__ == "__main__":
    main()
