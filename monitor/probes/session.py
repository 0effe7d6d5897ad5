"""Per-target state that the caller (the scheduler) keeps between probes."""

from __future__ import annotations

from .httpclient import HttpConnection
from .oauth import CachedToken


class ProbeSession:
    """What a target's probes keep between runs; ``close()`` when the target goes away.

    ``status_connection``: the status probe's kept-alive connection to an agent.
    ``oauth_token``: an API check's OAuth2 access token, reused until shortly before it
    expires or until the API rejects it (the token is left out of ``repr``).
    """

    __slots__ = ("oauth_token", "status_connection")

    def __init__(self) -> None:
        self.status_connection: HttpConnection | None = None
        self.oauth_token: CachedToken | None = None

    def close(self) -> None:
        if self.status_connection is not None:
            self.status_connection.close()
            self.status_connection = None
        self.oauth_token = None
