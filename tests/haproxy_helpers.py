"""HAProxy for tests: a front certificate, the process itself, and its stats page."""

from __future__ import annotations

import contextlib
import csv
import datetime
import io
import ipaddress
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def front_certificate(directory: Path) -> tuple[Path, Path]:
    """A CA and a certificate for 127.0.0.1: (HAProxy's PEM with key, the CA's PEM)."""
    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())

    def cert(subject: str, issuer: str, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        return builder.sign(key, hashes.SHA256())

    ca = cert("load test CA", "load test CA", True)
    leaf = cert("127.0.0.1", "load test CA", False)
    pem = serialization.Encoding.PEM
    front = directory / "front.pem"
    front.write_bytes(
        leaf.public_bytes(pem)
        + key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    ca_file = directory / "front-ca.pem"
    ca_file.write_bytes(ca.public_bytes(pem))
    return front, ca_file


def backend_stats(port: int, backend: str) -> dict[str, dict[str, str]]:
    """HAProxy's stats page as CSV: one row per server of ``backend``, by server name."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats;csv", timeout=5) as answer:
        text = answer.read().decode().lstrip("# ")
    return {
        row["svname"]: row for row in csv.DictReader(io.StringIO(text)) if row["pxname"] == backend
    }


@contextlib.contextmanager
def haproxy_process(config: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """``haproxy -f CONFIG -db`` until the block ends (SIGTERM, then SIGKILL)."""
    proc = subprocess.Popen(
        ["haproxy", "-f", str(config), "-db"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
