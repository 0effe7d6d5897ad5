"""The Locust user: calls a group's API checks through its entrypoint, as a client would.

Each task picks one API check at random, fills its path and body with synthetic data, adds
its credentials (API key header, or an OAuth2 bearer token from ``loadtests.oauth``), and
counts the call a success only with the check's expected status. TLS is verified against
the inventory's CA (or the system's) with TLS 1.2 at least, and the host name is checked.
The plan comes from ``configure``, called at test start in every process that runs users.
"""

from __future__ import annotations

import random
import ssl
from collections.abc import Callable
from typing import Any, ClassVar

import gevent.ssl
from locust import constant, constant_pacing, task
from locust.contrib.fasthttp import FastHttpUser

from loadtests.oauth import TokenCache, TokenUnavailable
from loadtests.plan import ApiKey, Endpoint, LoadPlan, OAuth2

_TLS_FLOOR = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def ssl_context_factory(ca_file: str | None, min_tls: str) -> Callable[..., ssl.SSLContext]:
    """What geventhttpclient calls for each connection pool (it passes ``cafile=None``)."""

    def factory(**_ignored: Any) -> ssl.SSLContext:
        context = gevent.ssl.create_default_context(cafile=ca_file)
        context.minimum_version = _TLS_FLOOR[min_tls]
        return context

    return factory


class ApiCheckUser(FastHttpUser):
    """A client of one agent group; see ``configure``."""

    insecure = False  # verify certificates and host names (FastHttpUser's default is off)
    connection_timeout = 5.0
    network_timeout = 10.0
    plan: ClassVar[LoadPlan | None] = None
    tokens: ClassVar[TokenCache] = TokenCache()
    wait_time = constant_pacing(1.0)

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.rng = random.Random()  # noqa: S311 - synthetic data, not security

    @task
    def call_api_check(self) -> None:
        assert self.plan is not None, "configure() runs at test start"
        self.call(self.rng.choice(self.plan.endpoints))

    def call(self, endpoint: Endpoint) -> None:
        headers: dict[str, str] = {}
        auth = endpoint.auth
        if isinstance(auth, ApiKey):
            headers[auth.header] = auth.secret.reveal()
        elif isinstance(auth, OAuth2):
            try:
                headers["Authorization"] = f"Bearer {self.tokens.token(self.client, auth)}"
            except TokenUnavailable:
                return  # the failed token fetch is what this task recorded
        body = None if endpoint.body is None else endpoint.body.render(self.rng)
        with self.client.request(
            endpoint.method,
            endpoint.path.render(self.rng),
            name=endpoint.name,
            headers=headers,
            json=body,
            allow_redirects=False,
            catch_response=True,
        ) as answer:
            status = answer.status_code
            if status == endpoint.expect_status:
                answer.success()
                return
            if status == 401 and isinstance(auth, OAuth2):
                self.tokens.forget(auth)
            # Our own words only: never the answer's body, which may carry personal data.
            got = status or f"no answer ({type(getattr(answer, 'error', None)).__name__})"
            answer.failure(f"expected {endpoint.expect_status}, got {got}")


def configure(plan: LoadPlan, *, host: str | None, pacing_s: float, timeout_s: float) -> None:
    """Point the user class at ``plan`` (``host`` overrides its entrypoint)."""
    ApiCheckUser.plan = plan
    ApiCheckUser.host = host or plan.base_url
    ApiCheckUser.ssl_context_factory = staticmethod(ssl_context_factory(plan.ca_file, plan.min_tls))
    ApiCheckUser.wait_time = constant_pacing(pacing_s) if pacing_s > 0 else constant(0)
    ApiCheckUser.network_timeout = timeout_s
    ApiCheckUser.connection_timeout = min(5.0, timeout_s)
