"""OAuth 2.0 client credentials grant (RFC 6749 section 4.4) for the API check probers.

The client authenticates in the form body (``client_id`` and ``client_secret`` next to
``grant_type=client_credentials`` and ``scope``), which RFC 6749 section 2.3.1 allows and every
common identity provider accepts. The token endpoint's answer is untrusted input: anything
unexpected is a :class:`TokenError` with a bounded reason and context, and nothing from the
answer (nor the secret, nor the token) ever reaches a result.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from .contexts import verified_context
from .failures import TARGET_FAULTS, classify
from .httpclient import connect
from .result import Reason, Scalar
from .target import OAuth2Credentials, host_header

# A token is used until this long before it expires (or a tenth of its life, if shorter).
REFRESH_MARGIN = 30.0
# Lifetime assumed when the endpoint does not say (``expires_in`` is only RECOMMENDED).
DEFAULT_LIFETIME = 300.0

# RFC 6750 b64token: what may follow "Bearer " in an Authorization header.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_MAX_TOKEN_CHARS = 16 * 1024
_DECIMAL = re.compile(r"[0-9]{1,12}")
# RFC 6749 section 5.2 error codes: the only error text from the endpoint that we keep.
_OAUTH_ERRORS = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
    }
)


class TokenError(Exception):
    """No usable token: ``reason`` is ``token_rejected`` or ``token_failed``.

    ``context`` holds bounded facts only: ``cause`` (a reason value or a fixed word),
    ``token_status``, ``oauth_error`` (a standard code), TLS verification codes.
    """

    def __init__(self, reason: Reason, **context: Scalar) -> None:
        super().__init__(reason.value)
        self.reason = reason
        self.context = context


@dataclass(frozen=True, slots=True)
class CachedToken:
    """An access token kept in the session; ``refresh_at`` is event-loop time."""

    access_token: str = field(repr=False)
    refresh_at: float
    credentials: OAuth2Credentials = field(repr=False)  # whom it was issued to

    def usable(self, credentials: OAuth2Credentials, now: float) -> bool:
        return now < self.refresh_at and credentials == self.credentials


def parse_token_response(
    status: int, body: bytes, credentials: OAuth2Credentials, issued: float
) -> CachedToken:
    """The token from a token endpoint's answer, or ``TokenError``; ``issued`` is loop time."""
    document = _json_object(body)
    if status != 200:
        if status in (400, 401, 403):
            error = document.get("error") if document else None
            code = error if error in _OAUTH_ERRORS else None
            raise TokenError(Reason.TOKEN_REJECTED, token_status=status, oauth_error=code)
        raise TokenError(Reason.TOKEN_FAILED, cause="http_status", token_status=status)
    if document is None:
        raise TokenError(Reason.TOKEN_FAILED, cause="not_json", token_status=status)
    token = document.get("access_token")
    if not isinstance(token, str) or len(token) > _MAX_TOKEN_CHARS:
        raise TokenError(Reason.TOKEN_FAILED, cause="no_access_token", token_status=status)
    if not _B64TOKEN.fullmatch(token):
        raise TokenError(Reason.TOKEN_FAILED, cause="bad_access_token", token_status=status)
    token_type = document.get("token_type", "Bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise TokenError(Reason.TOKEN_FAILED, cause="token_type", token_status=status)
    lifetime = _lifetime(document.get("expires_in"))
    margin = min(REFRESH_MARGIN, lifetime / 10)
    return CachedToken(token, issued + lifetime - margin, credentials)


def _json_object(body: bytes) -> dict[str, object] | None:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return document if isinstance(document, dict) else None


def _lifetime(value: object) -> float:
    """``expires_in`` in seconds: a number or a decimal string (some providers send one)."""
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return DEFAULT_LIFETIME
    return max(float(value), 0.0)


async def fetch_token(credentials: OAuth2Credentials, deadline: float) -> CachedToken:
    """Request a token on a fresh connection by ``deadline``; failures are ``TokenError``."""
    parts = urlsplit(credentials.token_url)
    host = parts.hostname or ""
    port = parts.port or 443
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    form = {
        "grant_type": "client_credentials",
        "client_id": credentials.client_id,
        "client_secret": credentials.client_secret,
    }
    if credentials.scope:
        form["scope"] = credentials.scope
    headers = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Accept", "application/json"),
        ("Cache-Control", "no-store"),
        ("Connection", "close"),
    ]
    loop = asyncio.get_running_loop()
    issued = loop.time()
    conn = None
    try:
        async with asyncio.timeout_at(deadline):
            conn = await connect(
                host,
                port,
                ssl_context=verified_context(credentials.ca_bundle, "1.2", True),
                server_hostname=host,
            )
            response = await conn.request(
                "POST", path, host_header(host, port), headers, body=urlencode(form).encode()
            )
    except TARGET_FAULTS as exc:
        reason, context = classify(exc)
        raise TokenError(Reason.TOKEN_FAILED, cause=reason.value, **context) from None
    finally:
        if conn is not None:
            conn.close()
    return parse_token_response(response.status, response.body, credentials, issued)
