"""Per-target state that the caller (the scheduler) keeps between probes."""

from __future__ import annotations

from .httpclient import HttpConnection


class ProbeSession:
    """Holds the status probe's kept-alive connection; ``close()`` when the target goes away."""

    __slots__ = ("status_connection",)

    def __init__(self) -> None:
        self.status_connection: HttpConnection | None = None

    def close(self) -> None:
        if self.status_connection is not None:
            self.status_connection.close()
            self.status_connection = None
