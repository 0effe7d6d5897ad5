"""One call of an API check through the group's entrypoint, as a client makes it.

Shared by the ``entrypoint`` and ``auth`` probers. Every call opens a fresh connection: a new
client's connection is what a load balancer has to place on a healthy agent, and a kept-alive
one would pin the probe to a single agent behind a connection-balancing load balancer.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence

from .contexts import verified_context
from .httpclient import Response, connect
from .target import ApiCheckTarget, host_header

USER_AGENT = "agentha-probe"
METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


def request_body(target: ApiCheckTarget) -> tuple[bytes | None, list[tuple[str, str]]]:
    """The encoded body and its content headers (``Content-Length`` is added on sending)."""
    if target.body is not None:
        body = json.dumps(dict(target.body), separators=(",", ":"), ensure_ascii=False)
        return body.encode(), [("Content-Type", "application/json")]
    if target.method in METHODS_WITH_BODY:
        return b"", []  # an explicit Content-Length: 0 (some servers answer 411 without it)
    return None, []


async def call_api(
    target: ApiCheckTarget, credentials: Sequence[tuple[str, str]], deadline: float
) -> tuple[Response, float]:
    """Make the check's request with ``credentials`` headers; the response and its latency.

    Raises what ``httpclient`` raises (``OSError``, ``HttpError``); the connection is always
    closed, also when the call is cut off.
    """
    body, content_headers = request_body(target)
    headers = [
        ("Accept", "application/json, */*;q=0.1"),
        ("User-Agent", USER_AGENT),
        ("Connection", "close"),
        *content_headers,
        *credentials,
    ]
    ssl_context = (
        verified_context(target.ca_bundle, target.min_tls_version, True)
        if target.scheme == "https"
        else None
    )
    started = time.monotonic()
    conn = None
    try:
        async with asyncio.timeout_at(deadline):
            conn = await connect(
                target.host,
                target.port,
                ssl_context=ssl_context,
                server_hostname=target.expected_name,
            )
            response = await conn.request(
                target.method,
                target.path,
                host_header(target.expected_name, target.port),
                headers,
                body=body,
            )
    finally:
        if conn is not None:
            conn.close()
    return response, time.monotonic() - started
