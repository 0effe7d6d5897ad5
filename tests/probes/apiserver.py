"""Local API and token endpoints for the API check probers: record each request, answer it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from monitor.probes import ProbeResult, ProbeSession

from .helpers import read_request, response


@dataclass
class Request:
    line: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode(), strict_parsing=True).items()}


Answer = Callable[[Request], bytes | None]  # None: stay silent (the client times out)


def recording(answer: Answer, seen: list[Request]):
    """A handler that reads one request with its body, records it and sends ``answer``."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_request(reader)
        if not head[":line"]:
            return
        body = await reader.readexactly(int(head.get("content-length", "0")))
        request = Request(head[":line"], head, body)
        seen.append(request)
        reply = answer(request)
        if reply is None:
            await reader.read()  # hold the connection until the client gives up
            return
        writer.write(reply)
        await writer.drain()

    return handler


def json_response(status: int, document: Any) -> bytes:
    return response(status, json.dumps(document).encode(), "Content-Type: application/json")


class TokenIssuer:
    """A token endpoint issuing ``tok-1``, ``tok-2``...; ``valid`` is what the API accepts."""

    def __init__(self, expires_in: Any = 3600) -> None:
        self.expires_in = expires_in
        self.issued = 0
        self.valid: set[str] = set()
        self.seen: list[Request] = []

    def answer(self, request: Request) -> bytes:
        self.issued += 1
        token = f"tok-{self.issued}"
        self.valid.add(token)
        return json_response(
            200, {"access_token": token, "token_type": "Bearer", "expires_in": self.expires_in}
        )

    def api(self, request: Request) -> bytes:
        """An API answer: 200 for a bearer token this issuer made valid, else 401."""
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        return response(200 if token in self.valid else 401)


def assert_hidden(secret: str, result: ProbeResult, *others: object) -> None:
    """``secret`` appears in no representation of the result (nor of ``others``)."""
    texts = [repr(result), str(result), repr(dict(result.context)), repr(result.details)]
    texts += [str(v) for v in result.context.values()]
    for other in others:
        texts.append(repr(other))
        if isinstance(other, ProbeSession):
            texts.append(repr(other.oauth_token))
    for text in texts:
        assert secret not in text, text
