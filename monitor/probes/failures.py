"""Turn the exceptions a probe can meet into an enumerated reason plus bounded context."""

from __future__ import annotations

import socket
import ssl

from .httpclient import BadResponse, BodyTooLarge, HttpError, NoResponse
from .result import Reason, Scalar

# Exceptions a target can cause; anything else is our bug and is allowed to propagate.
TARGET_FAULTS = (OSError, HttpError)

# OpenSSL X509_V_ERR_* codes that have their own reason; every other code means "untrusted".
_VERIFY_REASONS = {
    9: Reason.CERT_NOT_YET_VALID,
    10: Reason.CERT_EXPIRED,
    62: Reason.CERT_HOSTNAME,  # host name mismatch
    64: Reason.CERT_HOSTNAME,  # IP address mismatch
}

# OpenSSL reason strings for "no protocol version both sides accept".
_VERSION_ERRORS = frozenset(
    {
        "NO_PROTOCOLS_AVAILABLE",
        "TLSV1_ALERT_PROTOCOL_VERSION",
        "UNSUPPORTED_PROTOCOL",
        "WRONG_SSL_VERSION",
        "VERSION_TOO_LOW",
    }
)


def classify(exc: OSError | HttpError) -> tuple[Reason, dict[str, Scalar]]:
    """The reason and key/value context for a target fault (order matters: subclasses first)."""
    match exc:
        case BodyTooLarge():
            return Reason.BODY_TOO_LARGE, {}
        case NoResponse():
            return Reason.NO_RESPONSE, {}
        case BadResponse():
            return Reason.BAD_RESPONSE, {"detail": str(exc)}
        case TimeoutError():
            return Reason.TIMEOUT, {}
        case socket.gaierror():
            return Reason.DNS, {"errno": exc.errno}
        case ConnectionRefusedError():
            return Reason.REFUSED, {}
        case ssl.SSLCertVerificationError():
            reason = _VERIFY_REASONS.get(exc.verify_code, Reason.CERT_UNTRUSTED)
            return reason, {"verify_code": exc.verify_code, "verify_error": exc.verify_message}
        case ssl.SSLError():
            if exc.reason in _VERSION_ERRORS:
                return Reason.TLS_VERSION, {"ssl_reason": exc.reason}
            return Reason.TLS_HANDSHAKE, {"ssl_reason": exc.reason}
        case ConnectionResetError() | ConnectionAbortedError() | BrokenPipeError():
            return Reason.RESET, {}
        case _:
            return Reason.CONNECT_FAILED, {"errno": getattr(exc, "errno", None)}
