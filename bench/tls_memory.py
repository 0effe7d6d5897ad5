"""What one kept-alive TLS client connection costs in memory, and what decides it.

The monitor keeps one TLS connection open per agent for its status probe, so at 10,000 agents
the connections are most of its memory. This takes the rest of the monitor away: a TLS echo
server in a child process (a fresh self-signed EC certificate, Python's ``ssl``), and for
each variant a child client that opens N connections one after another, sends one line on
each and reads the answer (as a status probe does), and keeps them all open. Figure: the
client's RSS growth over N (``/proc/self/status`` VmRSS), in KiB per connection.

Variants, each alone in a fresh process:
  loop      uvloop (as ``agentha monitor``) or asyncio's own loop
  TLS       as agreed (1.3 here) or the client held to TLS 1.2
  tickets   session tickets the server sends after a TLS 1.3 handshake: 2 (OpenSSL's and
            Python's default, what most servers do) or 0; the client cannot refuse them
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import resource
import ssl
import subprocess
import sys
import tempfile
from pathlib import Path

import procstat
import stack

EPILOG = """\
examples:
  .venv/bin/python bench/tls_memory.py                  # 2,000 connections, 8 variants, ~30 s
  .venv/bin/python bench/tls_memory.py --connections 5000 --loops uvloop
"""


def serve(cert: str, key: str, tickets: int) -> None:
    """The echo server: prints its port, answers every line with 200 bytes."""

    async def main() -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        context.num_tickets = tickets

        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while await reader.readline():
                writer.write(b"x" * 199 + b"\n")
                await writer.drain()

        server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=context, backlog=4096)
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def client(port: int, ca: str, connections: int, tls12: bool) -> dict[str, float]:
    context = ssl.create_default_context(cafile=ca)
    if tls12:
        context.maximum_version = ssl.TLSVersion.TLSv1_2

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter, str]:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="localhost"
        )
        writer.write(b"GET\n")
        await reader.readline()
        return reader, writer, writer.get_extra_info("ssl_object").version()

    async def main() -> dict[str, float]:
        held = [await connect()]  # the first one loads what every connection shares
        before = procstat.rss_bytes(os.getpid())
        held += [await connect() for _ in range(connections)]
        grown = procstat.rss_bytes(os.getpid()) - before
        return {"kib": grown / 1024 / connections, "version": held[-1][2]}

    return main


def run_client(args: argparse.Namespace) -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.connections + 200), hard))
    main = client(args.port, args.ca, args.connections, args.tls12)
    if args.loop == "uvloop":
        import uvloop

        result = uvloop.run(main())
    else:
        result = asyncio.run(main())
    print(json.dumps(result))
    return 0


def self_signed(directory: Path) -> tuple[str, str]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)


def main() -> int:
    parser = stack.argument_parser(__doc__, EPILOG)
    parser.add_argument(
        "--connections",
        type=int,
        default=2000,
        metavar="N",
        help="connections held per variant (default 2000)",
    )
    parser.add_argument(
        "--loops",
        nargs="+",
        choices=("uvloop", "asyncio"),
        default=["uvloop", "asyncio"],
        help="event loops to try (default both)",
    )
    parser.add_argument(
        "--serve", nargs=3, metavar=("CERT", "KEY", "TICKETS"), help=argparse.SUPPRESS
    )
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ca", help=argparse.SUPPRESS)
    parser.add_argument("--loop", help=argparse.SUPPRESS)
    parser.add_argument("--tls12", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], args.serve[1], int(args.serve[2]))
        return 0
    if args.client:
        return run_client(args)
    if args.connections < 1:
        parser.error("--connections must be positive")
    rows = []
    with tempfile.TemporaryDirectory(prefix="tls-memory-") as tmp:
        cert, key = self_signed(Path(tmp))
        for tickets in (2, 0):
            server = subprocess.Popen(
                [sys.executable, __file__, "--serve", cert, key, str(tickets)],
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                assert server.stdout is not None
                port = server.stdout.readline().strip()
                for loop, tls12 in itertools.product(args.loops, (False, True)):
                    done = subprocess.run(
                        [
                            sys.executable,
                            __file__,
                            "--client",
                            "--port",
                            port,
                            "--ca",
                            cert,
                            "--loop",
                            loop,
                            "--connections",
                            str(args.connections),
                        ]
                        + (["--tls12"] if tls12 else []),
                        capture_output=True,
                        text=True,
                        check=False,
                        timeout=300,
                    )
                    if done.returncode != 0:
                        print(f"client failed: {done.stderr.strip()[-300:]}", file=sys.stderr)
                        return 1
                    figures = json.loads(done.stdout)
                    rows.append((loop, figures["version"], tickets, figures["kib"]))
                    print(
                        f"-- {loop}, {figures['version']}, server tickets {tickets}: "
                        f"{figures['kib']:.1f} KiB",
                        file=sys.stderr,
                    )
            finally:
                server.kill()
                server.wait()
    print(f"\n{args.connections} kept-alive TLS client connections, one request each")
    print(f"{'loop':<8} {'TLS':<8} {'server tickets':>14} {'KiB per connection':>19}")
    for loop, version, tickets, kib in rows:
        print(f"{loop:<8} {version:<8} {tickets if version == 'TLSv1.3' else '-':>14} {kib:>19.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(stack.main_guard(main))
