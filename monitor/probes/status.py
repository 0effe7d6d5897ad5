"""The status prober: ``GET /frendsstatusinfo`` over a kept-alive connection per agent.

200 is up, 503 is paused (a controlled drain), 401/403 is a rejected health-check key. A
kept-alive connection the agent closed is replaced at once by a fresh one in the same probe.
"""

from __future__ import annotations

import asyncio
import json
import math
import re

from .contexts import verified_context
from .failures import TARGET_FAULTS, classify
from .httpclient import NoResponse, Response, connect
from .result import ProbeResult, ProbeRun, Reason, StatusDetails
from .session import ProbeSession
from .target import ProbeTarget

API_KEY_HEADER = "health-check-api-key"

_STATUS_REASONS = {
    200: Reason.OK,
    503: Reason.PAUSED,
    401: Reason.UNAUTHORIZED,
    403: Reason.UNAUTHORIZED,
}

# Body keys (compared lower-case, without "_" or "-") that carry the two figures we read,
# with the factor that turns the value into bytes.
_PROCESS_KEYS = frozenset({"executingprocesses", "executingprocesscount", "processcount"})
_MEMORY_KEYS = {
    "memory": 1,
    "memorybytes": 1,
    "memoryusage": 1,
    "memoryusagebytes": 1,
    "workingset": 1,
    "workingsetbytes": 1,
    "memorymb": 1024 * 1024,
    "memoryusagemb": 1024 * 1024,
    "workingsetmb": 1024 * 1024,
}
_KEY_NOISE = re.compile(r"[_\-]")
_KEY_NAMES: dict[str, str] = {}  # body key -> compared form; agents repeat the same few keys
_KEY_NAMES_MAX = 256  # the body is untrusted: the cache must not grow with what it sends


def _key_name(key: str) -> str:
    name = _KEY_NAMES.get(key)
    if name is None:
        name = _KEY_NOISE.sub("", key.lower())
        if len(_KEY_NAMES) < _KEY_NAMES_MAX and len(key) <= 64:
            _KEY_NAMES[key] = name
    return name


def parse_status_body(body: bytes, connection_reused: bool) -> StatusDetails:
    """Read the optional JSON body: untrusted, so anything unexpected is simply not measured."""
    try:
        try:
            # UTF-8, as agents send it (json.loads would detect the encoding again); a BOM is
            # allowed, as json.loads allows it on bytes.
            text = body.decode().removeprefix("\ufeff")
        except UnicodeDecodeError:
            text = body  # let json.loads try the other encodings JSON allows
        document = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: absurdly nested input
        return StatusDetails(connection_reused, len(body), body_is_json=False)
    processes = memory = None
    if isinstance(document, dict):
        for key, value in document.items():
            # bool is an int subclass: true/false is not a figure; NaN and inf are not either.
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if not math.isfinite(value) or value < 0:
                continue
            name = _key_name(key)
            if name in _PROCESS_KEYS and processes is None:
                processes = int(value)
            elif name in _MEMORY_KEYS and memory is None:
                memory = int(value * _MEMORY_KEYS[name])
    return StatusDetails(connection_reused, len(body), True, processes, memory)


async def probe_status(target: ProbeTarget, session: ProbeSession, deadline: float) -> ProbeResult:
    """Probe the status endpoint; ``deadline`` (event-loop time) caps the whole exchange.

    A kept-alive connection that the agent closed (found closed, or closed or reset as we reuse
    it) is replaced by a fresh one within the same probe: an idle close is normal HTTP, and
    the fresh attempt tells whether the agent is really gone. ``dropped`` in the context says
    it happened, so it still shows up.
    """
    run = ProbeRun("status", target.id)
    dropped = False
    if session.status_connection is not None and not session.status_connection.reusable:
        session.close()
        dropped = True
    headers = [("Accept", "application/json"), ("Connection", "keep-alive")]
    if target.api_key is not None:
        headers.append((API_KEY_HEADER, target.api_key))
    while True:
        reused = session.status_connection is not None
        try:
            response = await _exchange(target, session, headers, deadline)
        except asyncio.CancelledError:
            session.close()  # cut off by the caller mid-exchange: the stream state is unknown
            raise
        except TARGET_FAULTS as exc:
            session.close()
            reason, context = classify(exc)
            if reused and (isinstance(exc, NoResponse) or reason is Reason.RESET):
                dropped = True  # raced with the agent's close: one fresh attempt
                continue
            return run.finish(reason, reused=reused, dropped=dropped, **context)
        break
    if not response.keep_alive:
        session.close()
    reason = _STATUS_REASONS.get(response.status, Reason.HTTP_STATUS)
    details = parse_status_body(response.body, reused) if reason is Reason.OK else None
    context = {"dropped": True} if dropped else {}
    return run.finish(reason, http_status=response.status, details=details, **context)


async def _exchange(
    target: ProbeTarget, session: ProbeSession, headers: list[tuple[str, str]], deadline: float
) -> Response:
    async with asyncio.timeout_at(deadline):
        conn = session.status_connection
        if conn is None:
            ssl_context = (
                verified_context(target.ca_bundle, target.min_tls_version, True)
                if target.scheme == "https"
                else None
            )
            conn = await connect(
                target.host,
                target.port,
                ssl_context=ssl_context,
                server_hostname=target.expected_name,
            )
            session.status_connection = conn
        return await conn.request(
            "GET", target.status_path, target.host_header(target.port), headers
        )
