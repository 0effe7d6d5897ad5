"""OAuth 2.0 client credentials for Locust users: one token per client, shared, refreshed.

Every user of a process shares the token of its (token URL, client id, scope), as one client
application would. It is fetched with the first user's HTTP client (so the fetch is timed and
counted as the ``oauth2-token`` endpoint), used until shortly before ``expires_in`` runs
out, and dropped when an API answers 401. Neither the secret nor the token is ever logged.
Under Locust, gevent's monkey-patching makes ``threading.Lock`` a greenlet lock: one user
fetches while the others wait.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from loadtests.plan import TOKEN_ENDPOINT, OAuth2

# Refresh this long before expiry (or at a tenth of the token's life, if that is shorter).
REFRESH_MARGIN_S = 30.0
# Lifetime assumed when the endpoint does not say (expires_in is only RECOMMENDED).
DEFAULT_LIFETIME_S = 300.0


class TokenUnavailable(Exception):
    """No token could be had; the fetch itself was already recorded as a failure."""


@dataclass
class Token:
    value: str = field(repr=False)
    refresh_at: float


class TokenCache:
    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str, str | None], Token] = {}
        self._lock = threading.Lock()

    def token(self, client: Any, auth: OAuth2) -> str:
        """A valid access token for ``auth``, fetched with ``client`` (a FastHttpSession)."""
        key = (auth.token_url, auth.client_id, auth.scope)
        with self._lock:
            cached = self._tokens.get(key)
            if cached is not None and time.monotonic() < cached.refresh_at:
                return cached.value
            token = self._fetch(client, auth)
            self._tokens[key] = token
            return token.value

    def forget(self, auth: OAuth2) -> None:
        """Drop the token (an API refused it): the next call fetches a new one."""
        self._tokens.pop((auth.token_url, auth.client_id, auth.scope), None)

    def _fetch(self, client: Any, auth: OAuth2) -> Token:
        form = {
            "grant_type": "client_credentials",
            "client_id": auth.client_id,
            "client_secret": auth.secret.reveal(),
        }
        if auth.scope:
            form["scope"] = auth.scope
        with client.request(
            "POST",
            auth.token_url,
            name=TOKEN_ENDPOINT,
            data=urlencode(form),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
            catch_response=True,
        ) as answer:
            token = parse_token_answer(answer.status_code, answer.content, time.monotonic())
            if token is None:
                answer.failure(f"token endpoint answered {answer.status_code or 'nothing'}")
                raise TokenUnavailable
            answer.success()
            return token


def parse_token_answer(status: int, body: bytes | None, now: float) -> Token | None:
    """The token and when to refresh it (``now`` + lifetime - margin), or None if unusable."""
    if status != 200 or not body:
        return None
    try:
        document = json.loads(body)
        value = document["access_token"]
        lifetime = float(document.get("expires_in", DEFAULT_LIFETIME_S))
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(value, str) or not value or lifetime <= 0:
        return None
    margin = min(REFRESH_MARGIN_S, lifetime / 10)
    return Token(value, now + lifetime - margin)
