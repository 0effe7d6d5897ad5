"""The entrypoint prober: a group's API check through its load balancer or API Gateway Agent.

The call is made as a client makes it: method, path, JSON body and credentials (an API key
header, or an OAuth2 bearer token from the client credentials grant), TLS verified against
the check's CA. ``ok`` when the status equals ``expect_status``.

The OAuth2 token is kept in the session and reused until shortly before it expires. A reused
token that gets a 401 is dropped, a new one is fetched and the call made once more, within the
same deadline: a token revoked or expired early is normal, and only the retry tells whether
the API works.
"""

from __future__ import annotations

import asyncio
import time

from .apicall import call_api
from .failures import TARGET_FAULTS, classify
from .oauth import CachedToken, TokenError, fetch_token
from .result import ApiCallDetails, ProbeResult, ProbeRun, Reason, TokenUse
from .session import ProbeSession
from .target import ApiCheckTarget, ApiKeyCredentials, OAuth2Credentials


async def _token(
    credentials: OAuth2Credentials, session: ProbeSession, deadline: float, refresh: bool
) -> tuple[CachedToken, TokenUse, float | None]:
    """The session's token if still usable (and not ``refresh``), else a new one."""
    cached = session.oauth_token
    now = asyncio.get_running_loop().time()
    if not refresh and cached is not None and cached.usable(credentials, now):
        return cached, TokenUse.REUSED, None
    session.oauth_token = None
    started = time.monotonic()
    try:
        token = await fetch_token(credentials, deadline)
    except TokenError as exc:
        exc.context["token_latency"] = round(time.monotonic() - started, 6)
        raise
    session.oauth_token = token
    use = TokenUse.REFRESHED if refresh else TokenUse.FETCHED
    return token, use, time.monotonic() - started


def _bearer(token: CachedToken) -> tuple[str, str]:
    return ("Authorization", f"Bearer {token.access_token}")


async def probe_entrypoint(
    target: ApiCheckTarget, session: ProbeSession, deadline: float
) -> ProbeResult:
    """Make the API check's call with its credentials by ``deadline`` (event-loop time)."""
    run = ProbeRun("entrypoint", target.id)
    auth = target.auth
    headers: list[tuple[str, str]] = []
    use: TokenUse | None = None
    token_latency: float | None = None
    try:
        if isinstance(auth, ApiKeyCredentials):
            headers = [(auth.header, auth.value)]
        elif isinstance(auth, OAuth2Credentials):
            token, use, token_latency = await _token(auth, session, deadline, refresh=False)
            headers = [_bearer(token)]
        response, latency = await call_api(target, headers, deadline)
        rejected = response.status == 401 and target.expect_status != 401
        if isinstance(auth, OAuth2Credentials) and rejected:
            session.oauth_token = None  # a token the API rejects is never sent again
            if use is TokenUse.REUSED:
                token, use, token_latency = await _token(auth, session, deadline, refresh=True)
                response, latency = await call_api(target, [_bearer(token)], deadline)
    except TokenError as exc:
        return run.finish(exc.reason, **exc.context)
    except TARGET_FAULTS as exc:
        reason, context = classify(exc)
        details = ApiCallDetails(token=use, token_latency=token_latency)
        return run.finish(reason, details=details, **context)
    details = ApiCallDetails(response.status, latency, len(response.body), use, token_latency)
    if response.status == target.expect_status:
        return run.finish(Reason.OK, http_status=response.status, details=details)
    return run.finish(
        Reason.UNEXPECTED_STATUS,
        http_status=response.status,
        details=details,
        expected=target.expect_status,
    )
