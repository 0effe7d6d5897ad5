"""The audit's caps: how many requests each check class may send, and how fast.

Every figure here bounds what one audit of one group can cost the APIs it tests; the report
states them. A change here changes the promise in docs/audit.md.
"""

from __future__ import annotations

import math

AUTH_REQUESTS = 4  # no credentials, wrong API key, expired token, malformed token
IP_REQUESTS = 1  # one call from audit_source
MAX_METHODS = 7  # every method the inventory can name, once each
HEADER_REQUESTS = 4  # oversized, invalid character, Content-Length with Transfer-Encoding, Host
MAX_TYPED_FIELDS = 10  # wrong-type bodies: one per field, the first ten fields
INPUT_FIXED_REQUESTS = 4  # malformed JSON, oversized payload, two path traversals
MAX_RATE_BURST = 50  # the burst of the rate check, never more
TOKEN_REQUESTS = 1  # an OAuth2 token, fetched once per API check

# One API check at most: every class with its largest configuration.
MAX_CHECK_REQUESTS = (
    TOKEN_REQUESTS
    + AUTH_REQUESTS
    + IP_REQUESTS
    + MAX_METHODS
    + HEADER_REQUESTS
    + MAX_TYPED_FIELDS
    + INPUT_FIXED_REQUESTS
    + MAX_RATE_BURST
)
# One group at most, however many API checks it has: the rest are skipped and say so.
MAX_GROUP_REQUESTS = 300

REQUEST_TIMEOUT_S = 5.0  # connect, TLS, request and the answer's head
MAX_ANSWER_HEAD = 64 * 1024  # bytes of an answer's head read; the body is never kept
OVERSIZED_HEADER_BYTES = 64 * 1024
OVERSIZED_PAYLOAD_BYTES = 2 * 1024 * 1024
# After a rate burst the API's bucket refills before the next check: burst / rate, capped.
MAX_REFILL_WAIT_S = 5.0


def rate_burst(rps: float, burst: int) -> int:
    """Requests the rate check sends: twice a second's worth plus the burst, at most 50."""
    return min(math.ceil(rps * 2 + burst), MAX_RATE_BURST)


def refill_wait(rps: float, burst: int) -> float:
    return min((burst + 1) / rps, MAX_REFILL_WAIT_S)
