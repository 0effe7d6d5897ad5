"""The auth prober: the API check's call without credentials must be refused.

401 or 403 is ``ok``. A 2xx (or the status the check expects with credentials) is
``unauthenticated_accepted``: the API serves anyone. Any other status (a 404, a 5xx, a
redirect) is ``unexpected_status``: the refusal this probe looks for did not happen.
Network and TLS failures have the common reasons. Only for checks with credentials.
"""

from __future__ import annotations

from .apicall import call_api
from .failures import TARGET_FAULTS, classify
from .result import ApiCallDetails, ProbeResult, ProbeRun, Reason
from .session import ProbeSession
from .target import ApiCheckTarget


async def probe_auth(target: ApiCheckTarget, session: ProbeSession, deadline: float) -> ProbeResult:
    """Make the API check's call without credentials by ``deadline`` (event-loop time).

    Raises ``ValueError`` for a check without credentials: calling it is a wiring bug.
    """
    if target.auth is None:
        raise ValueError(f"{target.id}: the auth probe needs a check with credentials")
    run = ProbeRun("auth", target.id)
    try:
        response, latency = await call_api(target, (), deadline)
    except TARGET_FAULTS as exc:
        reason, context = classify(exc)
        return run.finish(reason, **context)
    status = response.status
    details = ApiCallDetails(status, latency, len(response.body))
    if status in (401, 403):
        return run.finish(Reason.OK, http_status=status, details=details)
    if 200 <= status < 300 or status == target.expect_status:
        return run.finish(Reason.UNAUTHENTICATED_ACCEPTED, http_status=status, details=details)
    return run.finish(
        Reason.UNEXPECTED_STATUS, http_status=status, details=details, expected="401 or 403"
    )
