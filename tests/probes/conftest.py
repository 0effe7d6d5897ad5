from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
import pytest_asyncio

from .helpers import closed_port
from .pki import Leaf, Pki

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
Serve = Callable[..., Awaitable[int]]


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def good_leaf(pki: Pki) -> Leaf:
    return pki.leaf()


@pytest_asyncio.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start local servers on 127.0.0.1 free ports; all closed at teardown."""
    servers: list[asyncio.Server] = []
    tasks: set[asyncio.Task[None]] = set()

    async def start(handler: Handler, ssl_context: ssl.SSLContext | None = None) -> int:
        async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            tasks.add(asyncio.current_task())  # type: ignore[arg-type]
            try:
                await handler(reader, writer)
            except (OSError, asyncio.IncompleteReadError):
                pass  # the client went away: that is what several cases are about
            finally:
                writer.transport.abort()

        server = await asyncio.start_server(guarded, "127.0.0.1", 0, ssl=ssl_context)
        servers.append(server)
        return server.sockets[0].getsockname()[1]

    yield start
    for server in servers:
        server.close()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for server in servers:
        await server.wait_closed()


@pytest.fixture
def openssl_server() -> Iterator[Callable[..., int]]:
    """Start ``openssl s_server`` on a free loopback port; killed at teardown."""
    running: list[subprocess.Popen[bytes]] = []
    with contextlib.ExitStack() as logs:

        def start(leaf: Leaf, *args: str) -> int:
            port = closed_port()
            command = ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-quiet", "-www"]
            command += ["-cert", leaf.certfile, "-key", leaf.keyfile, *args]
            # A file, not a pipe: a chatty server can never block on a full pipe.
            log = logs.enter_context(tempfile.TemporaryFile())
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            running.append(process)
            give_up = time.monotonic() + 5
            while time.monotonic() < give_up:
                if process.poll() is not None:
                    log.seek(0)
                    pytest.fail(f"openssl s_server exited: {log.read().decode(errors='replace')}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    return port
                except OSError:
                    time.sleep(0.05)
            pytest.fail("openssl s_server did not start listening")

        yield start
        for process in running:
            process.terminate()
            try:
                process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=3)
