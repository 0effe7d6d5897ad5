"""The processes a benchmark runs: a simulated fleet, the monitor, a peer; started and stopped.

Every process is started as a subprocess on loopback with its output in a file of the run's
folder (a pipe nobody reads would fill up and stall it) and stopped with SIGTERM, then SIGKILL
after a bound, when its ``with`` block ends, also on Ctrl-C or SIGTERM of the benchmark.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

FLEET_READY_TIMEOUT_S = 300.0
MONITOR_READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0


class BenchError(Exception):
    """Something the benchmark needs is missing or failed; the message is one line."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


@contextlib.contextmanager
def running(
    name: str, command: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` until the block ends; its stdout and stderr go to ``log``."""
    with log.open("wb") as out:
        try:
            proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env
            )
        except OSError as exc:
            raise BenchError(f"cannot start {name} ({command[0]}): {exc.strerror}") from None
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_until(
    name: str, proc: subprocess.Popen[bytes], log: Path, ready: Callable[[], bool], timeout: float
) -> None:
    """Poll ``ready`` until true; fail with the log's tail if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            raise BenchError(f"{name} exited with code {proc.returncode}: {_tail(log)}")
        if time.monotonic() > deadline:
            raise BenchError(f"{name} not ready after {timeout:.0f} s: {_tail(log)}")
        time.sleep(0.1)


def http(
    url: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> bytes:
    """One HTTP exchange with a loopback service started by the benchmark."""
    request = urllib.request.Request(url, body, headers or {}, method=method)  # noqa: S310
    with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
        return answer.read()


def answers(url: str) -> bool:
    try:
        http(url, timeout=2.0)
    except (OSError, urllib.error.URLError):
        return False
    return True


@dataclass
class Fleet:
    """A running ``agentha sim``: its fleet.json, control API and secrets."""

    proc: subprocess.Popen[bytes]
    directory: Path
    info: dict[str, Any]
    token: str
    secrets: dict[str, str]

    @property
    def agents(self) -> list[dict[str, Any]]:
        return self.info["agents"]

    @property
    def inventory(self) -> Path:
        return Path(self.info["inventory_file"])

    def agents_only_inventory(self) -> Path:
        """The fleet's inventory without its API checks: agent probes only.

        API checks go through the groups' gateways, which then health-check every agent of
        their group each second: load on the fleet that would blur what the monitor costs.
        """
        document = yaml.load(self.inventory.read_text(), Loader=yaml.CSafeLoader)
        for env in document["environments"]:
            for group in env["groups"]:
                group.pop("api_checks", None)
        path = self.inventory.with_name("inventory-agents-only.yaml")
        path.write_text(yaml.dump(document, Dumper=yaml.CSafeDumper, sort_keys=False))
        return path

    @property
    def ca_file(self) -> Path:
        return Path(self.info["ca_file"])

    def control(self, method: str, path: str, body: object = None) -> Any:
        answer = http(
            self.info["control_url"] + path,
            method=method,
            body=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            timeout=10.0,
        )
        return json.loads(answer)


def read_secrets(path: Path) -> dict[str, str]:
    """``NAME=value`` lines of secrets.env (values may be single-quoted for the shell)."""
    secrets = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, value = shlex.split(line)[0].split("=", 1)
            secrets[name] = value
    return secrets


@contextlib.contextmanager
def fleet(directory: Path, agents: int) -> Iterator[Fleet]:
    """``agentha sim --agents N --write-fleet DIRECTORY`` until the block ends."""
    directory.mkdir(parents=True, exist_ok=True)
    log = directory.parent / f"{directory.name}.log"
    command = [
        sys.executable,
        "-m",
        "agentha",
        "sim",
        "--agents",
        str(agents),
        "--write-fleet",
        str(directory),
    ]
    with running("agentha sim", command, log) as proc:
        marker = directory / "fleet.json"
        wait_until("agentha sim", proc, log, marker.exists, FLEET_READY_TIMEOUT_S)
        info = json.loads(marker.read_text())
        yield Fleet(
            proc,
            directory,
            info,
            Path(info["token_file"]).read_text().strip(),
            read_secrets(Path(info["secrets_file"])),
        )


@dataclass
class Monitor:
    """A running ``agentha monitor``."""

    proc: subprocess.Popen[bytes]
    url: str

    def metrics(self) -> str:
        return http(f"{self.url}/metrics").decode()

    def snapshot(self) -> dict[str, Any]:
        return json.loads(http(f"{self.url}/api/v1/snapshot"))


@contextlib.contextmanager
def monitor(
    the_fleet: Fleet, log: Path, *options: str, agents_only: bool = True
) -> Iterator[Monitor]:
    """``agentha monitor`` on the fleet's inventory, with its secrets in the environment.

    ``agents_only``: without the inventory's API checks (see ``Fleet.agents_only_inventory``).
    """
    url = f"http://127.0.0.1:{free_port()}"
    inventory = the_fleet.agents_only_inventory() if agents_only else the_fleet.inventory
    command = [
        sys.executable,
        "-m",
        "agentha",
        "monitor",
        "-c",
        str(inventory),
        "--listen",
        url.removeprefix("http://"),
        *options,
    ]
    env = {**os.environ, **the_fleet.secrets}
    env.pop("AGENTHA_API_TOKEN", None)  # the benchmark reads the API without a token
    with running("agentha monitor", command, log, env) as proc:
        wait_until(
            "agentha monitor",
            proc,
            log,
            lambda: answers(f"{url}/healthz"),
            MONITOR_READY_TIMEOUT_S,
        )
        yield Monitor(proc, url)


def check_agentha() -> None:
    """Fail clearly when the benchmark does not run from an environment with agentha in it."""
    try:
        import agentha  # noqa: F401
    except ImportError:
        raise BenchError(
            f"agentha is not importable by {sys.executable}: run with the project's "
            ".venv/bin/python after ./run setup"
        ) from None


def stop_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt so every ``with`` block stops its process."""

    def handler(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def main_guard(main: Callable[[], int]) -> int:
    """Run a benchmark's main: one-line errors, exit 2; Ctrl-C stops everything, exit 130."""
    stop_on_sigterm()
    try:
        check_agentha()
        return main()
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: everything started was stopped", file=sys.stderr)
        return 130


def argument_parser(doc: str, epilog: str) -> argparse.ArgumentParser:
    """A benchmark's parser: its docstring's first paragraph as description, the rest and
    the examples after the options."""
    summary, rest = doc.split("\n\n", 1)
    return argparse.ArgumentParser(
        description=summary,
        epilog=rest + "\n" + epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def print_columns(rows: Sequence[Sequence[str]]) -> None:
    """Rows of cells as aligned columns: the first left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
