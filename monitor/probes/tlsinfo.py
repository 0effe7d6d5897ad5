"""Small pure getters over certificates, in the spirit of blackbox_exporter's ``prober/tls.go``.

Certificates are parsed from DER with ``cryptography`` because Python's ``getpeercert()`` is
empty when the certificate was not verified, and the audit must describe bad certificates too.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes

_DAY = 86400.0


def load_der(der: bytes) -> x509.Certificate:
    """Parse one DER certificate; ``ValueError`` if it is not one."""
    return x509.load_der_x509_certificate(der)


def subject(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string()


def issuer(cert: x509.Certificate) -> str:
    return cert.issuer.rfc4514_string()


def sans(cert: x509.Certificate) -> tuple[str, ...]:
    """DNS names then IP addresses from the subjectAltName extension, as text."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    ips = (str(ip) for ip in ext.get_values_for_type(x509.IPAddress))
    return (*ext.get_values_for_type(x509.DNSName), *ips)


def serial(cert: x509.Certificate) -> str:
    """Lower-case hex, as most tools print it."""
    return format(cert.serial_number, "x")


def fingerprint_sha256(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def not_before(cert: x509.Certificate) -> float:
    return cert.not_valid_before_utc.timestamp()


def not_after(cert: x509.Certificate) -> float:
    return cert.not_valid_after_utc.timestamp()


def earliest_expiry(chain: Sequence[x509.Certificate]) -> float:
    """When the first certificate of a non-empty chain expires (an intermediate can be first)."""
    return min(not_after(c) for c in chain)


def days_left(expiry: float, now: float) -> float:
    """Days from ``now`` to ``expiry`` (UNIX times); negative once expired."""
    return (expiry - now) / _DAY


def expiry_window(days: float, warning_days: int, critical_days: int) -> str:
    """``expired``, ``critical``, ``warning`` or ``ok``: where ``days`` left falls."""
    if days <= 0:
        return "expired"
    if days <= critical_days:
        return "critical"
    if days <= warning_days:
        return "warning"
    return "ok"


def hostname_matches(cert: x509.Certificate, name: str) -> bool:
    """RFC 6125 matching on subjectAltName only: a wildcard covers exactly one left-most label."""
    try:
        address = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        address = None
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    if address is not None:
        return address in ext.get_values_for_type(x509.IPAddress)
    wanted = name.rstrip(".").lower()
    return any(_dns_match(pattern, wanted) for pattern in ext.get_values_for_type(x509.DNSName))


def _dns_match(pattern: str, name: str) -> bool:
    pattern = pattern.rstrip(".").lower()
    if not pattern.startswith("*."):
        return pattern == name
    head, _, rest = name.partition(".")
    # "*.example.com" matches "a.example.com", not "example.com" nor "a.b.example.com".
    return bool(head) and "*" not in pattern[2:] and rest == pattern[2:]
