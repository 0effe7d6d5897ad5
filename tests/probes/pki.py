"""A throw-away PKI for the probe tests: a test CA and leaves with chosen validity windows."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DAY = dt.timedelta(days=1)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool,
    names: tuple[str, ...] = (),
    valid_from: dt.timedelta = -DAY,
    valid_to: dt.timedelta = 365 * DAY,
) -> x509.Certificate:
    issuer_name, signing_key = (issuer[0].subject, issuer[1]) if issuer else (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() + valid_from)
        .not_valid_after(_now() + valid_to)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
        builder = builder.add_extension(usage, critical=True)
    if names:
        sans: list[x509.GeneralName] = []
        for n in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                sans.append(x509.DNSName(n))
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


@dataclass
class Leaf:
    cert: x509.Certificate
    chain: tuple[x509.Certificate, ...]  # what the server sends after the leaf
    certfile: str
    keyfile: str

    def server_context(self, **versions: ssl.TLSVersion) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.certfile, self.keyfile)
        for attr, value in versions.items():
            setattr(ctx, attr, value)
        return ctx


class Pki:
    """A test CA written to ``directory``; ``ca_file`` is what a target's ca_bundle points to."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca = _cert("agentha test CA", self.ca_key, None, ca=True, valid_to=3650 * DAY)
        self.ca_file = str(directory / "ca.pem")
        Path(self.ca_file).write_bytes(_pem(self.ca))
        self._count = 0

    def leaf(
        self,
        names: tuple[str, ...] = ("127.0.0.1", "localhost"),
        *,
        valid_from: dt.timedelta = -DAY,
        valid_to: dt.timedelta = 365 * DAY,
        self_signed: bool = False,
        intermediate_valid_to: dt.timedelta | None = None,
    ) -> Leaf:
        """A leaf for ``names``; optionally issued through an intermediate CA."""
        self._count += 1
        key = ec.generate_private_key(ec.SECP256R1())
        issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None
        chain: tuple[x509.Certificate, ...] = ()
        if not self_signed:
            issuer = (self.ca, self.ca_key)
            if intermediate_valid_to is not None:
                mid_key = ec.generate_private_key(ec.SECP256R1())
                mid = _cert(
                    "agentha test intermediate",
                    mid_key,
                    issuer,
                    ca=True,
                    valid_to=intermediate_valid_to,
                )
                issuer, chain = (mid, mid_key), (mid,)
        cert = _cert(
            names[0], key, issuer, ca=False, names=names, valid_from=valid_from, valid_to=valid_to
        )
        certfile = self.dir / f"leaf{self._count}.pem"
        keyfile = self.dir / f"leaf{self._count}.key"
        certfile.write_bytes(_pem(cert, *chain))
        keyfile.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return Leaf(cert, chain, str(certfile), str(keyfile))
