"""Server and client SSL contexts: modern (TLS >= 1.2) or legacy (TLS 1.0 and up)."""

from __future__ import annotations

import ssl
import warnings
from pathlib import Path


def allow_legacy(ctx: ssl.SSLContext) -> None:
    """Let ``ctx`` speak TLS 1.0/1.1; OpenSSL 3 also needs security level 0 for their ciphers."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")


def server_context(cert_file: Path, key_file: Path, legacy: bool) -> ssl.SSLContext:
    """A server context for one agent certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_file, key_file)
    if legacy:
        allow_legacy(ctx)
    else:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def client_context(ca_file: Path) -> ssl.SSLContext:
    """A verifying client context that trusts the fleet CA (TLS >= 1.2)."""
    ctx = ssl.create_default_context(cafile=str(ca_file))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx
