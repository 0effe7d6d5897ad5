"""OAuth2 client-credentials access tokens, HMAC-signed so any process can check them.

A token is ``base64url(claims).base64url(hmac_sha256(key, claims))``; the claims carry the
environment and the expiry, so agents, gateways and workers need only the fleet's key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

TOKEN_LIFETIME_S = 3600


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue(key: bytes, env: str, client_id: str, now: float | None = None) -> str:
    """A bearer token for ``client_id`` valid in ``env`` for TOKEN_LIFETIME_S seconds."""
    issued = int(time.time() if now is None else now)
    claims = {"sub": client_id, "env": env, "iat": issued, "exp": issued + TOKEN_LIFETIME_S}
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    return f"{body}.{_b64(hmac.new(key, body.encode(), hashlib.sha256).digest())}"


def valid(key: bytes, token: str, env: str, now: float | None = None) -> bool:
    """True when ``token`` was signed with ``key``, is for ``env`` and has not expired."""
    body, _, signature = token.partition(".")
    if not body or not signature or len(token) > 2048 or not token.isascii():
        return False
    expected = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(expected, signature):
        return False
    try:
        claims = json.loads(_unb64(body))
    except ValueError:
        return False
    if not isinstance(claims, dict) or claims.get("env") != env:
        return False
    exp = claims.get("exp")
    return isinstance(exp, int) and exp > (time.time() if now is None else now)
