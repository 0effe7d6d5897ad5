"""TLS client contexts, built once per configuration and shared by every connection.

Building a context (loading a CA bundle) costs far more than a handshake, so they are cached by
their inputs; a changed CA bundle file is picked up on restart.
"""

from __future__ import annotations

import ssl
import warnings
from functools import lru_cache
from typing import Literal

TlsFloor = Literal["1.2", "1.3"]

_FLOORS: dict[str, ssl.TLSVersion] = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


@lru_cache(maxsize=64)
def verified_context(
    ca_bundle: str | None, min_version: TlsFloor, check_hostname: bool
) -> ssl.SSLContext:
    """A context that verifies the chain against ``ca_bundle`` (None: system trust)."""
    ctx = ssl.create_default_context(cafile=ca_bundle)
    ctx.minimum_version = _FLOORS[min_version]
    ctx.check_hostname = check_hostname
    # Subject-alternative names only, as browsers do; tlsinfo.hostname_matches agrees.
    ctx.hostname_checks_common_name = False
    return ctx


@lru_cache(maxsize=4)
def unverified_context(min_version: TlsFloor) -> ssl.SSLContext:
    """A context that accepts any certificate: to read certificates that fail verification."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = _FLOORS[min_version]
    return ctx


@lru_cache(maxsize=2)
def legacy_context(version: ssl.TLSVersion) -> ssl.SSLContext:
    """A context that speaks only ``version`` (TLS 1.0 or 1.1), to test whether a server does.

    OpenSSL 3 refuses these versions at its default security level (SHA-1 signatures), so the
    level is lowered to 0 and both bounds are pinned explicitly.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings(action="ignore", category=DeprecationWarning):
        # Python deprecates these versions; asking for them is the point of this context.
        ctx.minimum_version = version
        ctx.maximum_version = version
    return ctx
