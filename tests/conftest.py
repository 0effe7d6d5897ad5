"""Shared fixtures: a simulated fleet (`agentha sim`) running as a subprocess.

``start_sim`` starts one with any arguments and waits for its fleet.json; ``sim_fleet`` is
one demo fleet for the whole session, and ``fleet`` is that fleet with every agent's
conditions reset before and after the test, so tests never see each other's changes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

START_TIMEOUT_S = 60.0


class SimFleet:
    """A running fleet: its fleet.json, control API, CA and secrets (for tests only)."""

    def __init__(self, proc: subprocess.Popen[bytes], directory: Path) -> None:
        self.proc = proc
        self.directory = directory
        self.info: dict[str, Any] = json.loads((directory / "fleet.json").read_text())
        self.token = Path(self.info["token_file"]).read_text().strip()
        self.ca_file = Path(self.info["ca_file"])
        self.secrets = dict(
            line.split("=", 1)
            for line in Path(self.info["secrets_file"]).read_text().splitlines()
            if line and not line.startswith("#")
        )
        self.agents = {a["id"]: a for a in self.info["agents"]}
        self.gateways = {g["id"]: g for g in self.info["gateways"]}

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts the fleet CA (TLS >= 1.2)."""
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    def url(self, agent_id: str) -> str:
        return self.agents[agent_id]["url"]

    async def fetch(
        self,
        url: str,
        method: str = "GET",
        *,
        headers: dict[str, str] | None = None,
        json_body: Any = None,
        data: Any = None,
        timeout_s: float = 5.0,
    ) -> tuple[int, dict[str, str], str]:
        """One request on a fresh connection: (status, headers, text)."""
        connector = aiohttp.TCPConnector(ssl=self.ssl_context(), force_close=True)
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.request(
                method,
                url,
                headers=headers,
                json=json_body,
                data=data,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
                allow_redirects=False,
            ) as answer,
        ):
            return answer.status, dict(answer.headers), await answer.text()

    def control(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        raw: bytes | None = None,
    ) -> tuple[int, Any]:
        """Call the control API; returns (status, parsed JSON body)."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        request = urllib.request.Request(self.info["control_url"] + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if token != "":
            request.add_header("Authorization", f"Bearer {token or self.token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def set(self, agent_id: str, **fields: Any) -> dict[str, Any]:
        """Change an agent's conditions (fields as in the control API, ttl_s included)."""
        status, payload = self.control("PATCH", f"/v1/agents/{agent_id}/conditions", fields)
        assert status == 200, payload
        return payload

    def reset(self) -> None:
        status, payload = self.control("DELETE", "/v1/conditions")
        assert status == 200, payload

    def stop(self) -> tuple[str, str]:
        """SIGTERM, wait, and return (stdout, stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=30)
        return out.decode(errors="replace"), err.decode(errors="replace")


@contextlib.contextmanager
def start_sim(directory: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[SimFleet]:
    """Run ``agentha sim ARGS --write-fleet DIRECTORY`` until the block ends."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agentha",
            "sim",
            "--control-port",
            "0",
            "--write-fleet",
            str(directory),
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    fleet = None
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (directory / "fleet.json").exists():
            if proc.poll() is not None:
                _, err = proc.communicate()
                raise RuntimeError(f"agentha sim exited {proc.returncode}: {err.decode()}")
            if time.monotonic() > deadline:
                raise RuntimeError("agentha sim did not write fleet.json in time")
            time.sleep(0.05)
        fleet = SimFleet(proc, directory)
        yield fleet
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()


@pytest.fixture(scope="session")
def sim_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimFleet]:
    """The demo fleet, running for the whole session."""
    with start_sim(tmp_path_factory.mktemp("sim-fleet")) as fleet:
        yield fleet


@pytest.fixture
def fleet(sim_fleet: SimFleet) -> Iterator[SimFleet]:
    """The session's fleet with its starting conditions, restored again after the test."""
    sim_fleet.reset()
    yield sim_fleet
    sim_fleet.reset()
