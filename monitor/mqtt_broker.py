"""A local Mosquitto on loopback, for ``agentha demo --mqtt`` and the tests.

It writes a config into a folder of its own, listens on a free 127.0.0.1 port (plain, for
loopback demos) and optionally on a TLS port with a password file, and is stopped on exit.
"""

from __future__ import annotations

import getpass
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

MOSQUITTO = "/usr/sbin/mosquitto"
START_TIMEOUT_S = 10.0


def find_mosquitto() -> str | None:
    """The broker binary, or None when Mosquitto is not installed."""
    return shutil.which("mosquitto") or (MOSQUITTO if Path(MOSQUITTO).is_file() else None)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class LocalMosquitto:
    """``with LocalMosquitto(folder) as broker:`` runs one; ``kill()``/``start()`` for outages.

    ``tls=(cert, key)`` adds a TLS listener; ``passwords`` (a file made with
    ``mosquitto_passwd``) makes that listener require a username and password.
    """

    def __init__(
        self,
        folder: Path,
        *,
        tls: tuple[Path, Path] | None = None,
        passwords: Path | None = None,
        persistence: bool = False,
    ) -> None:
        binary = find_mosquitto()
        if binary is None:
            raise FileNotFoundError("mosquitto is not installed (Debian package 'mosquitto')")
        self.binary = binary
        self.folder = folder
        self.port = free_port()
        self.tls_port = free_port() if tls is not None else None
        self.config = folder / "mosquitto.conf"
        self.log = folder / "mosquitto.log"
        lines = [
            # Run as whoever started us: as root Mosquitto would switch to a user that cannot
            # read our private folder.
            f"user {getpass.getuser()}",
            "per_listener_settings true",
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
        ]
        if tls is not None:
            cert, key = tls
            lines += [f"listener {self.tls_port} 127.0.0.1", f"certfile {cert}", f"keyfile {key}"]
            lines += [f"password_file {passwords}", "allow_anonymous false"] if passwords else []
        if persistence:
            # Durable subscribers' sessions survive a kill -9 (saved every second).
            lines += [
                "persistence true",
                f"persistence_location {folder}/",
                "autosave_interval 1",
            ]
        folder.mkdir(parents=True, exist_ok=True)
        self.config.write_text("\n".join(lines) + "\n")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def database(self) -> Path:
        """Where a broker with ``persistence`` saves sessions and retained messages."""
        return self.folder / "mosquitto.db"

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def tls_url(self) -> str:
        return f"mqtts://127.0.0.1:{self.tls_port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            # Its own session: a Ctrl-C meant for us must not kill it before we say offline.
            self._proc = subprocess.Popen(
                [self.binary, "-c", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        for port in (self.port, self.tls_port):
            while port is not None and not _accepts(port):
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"mosquitto did not start; see {self.log}")
                time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: the broker dies as in a crash (no clean disconnects)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=5)

    def stop(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=5)

    def __enter__(self) -> LocalMosquitto:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0
