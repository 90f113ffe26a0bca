"""The local broker's secrets in secure mode: a CA made on the spot, the broker's certificate (for
127.0.0.1 and localhost), a client certificate for mutual TLS, and the SCRAM users' passwords.

Layout under $BOOSTER_HOME/kafka/secure/tls: ca.pem, ca-key.pem, server.pem (key and chain, Kafka's
PEM keystore), client.pem, client-key.pem; users/<name>.password, readable by the owner only.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# the broker's super user (it also authenticates the broker to itself); the others get ACLs
ADMIN = "admin"
# principals `booster kafka start --secure` makes: the worker, an upstream producer, an operator
USERS = (ADMIN, "booster-worker", "booster-upstream", "booster-operator")
VALID_DAYS = 825


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    # PKCS#8, the form Kafka's PEM keystore reads
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Booster local"),
            x509.NameAttribute(NameOID.COMMON_NAME, common),
        ]
    )


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    signer: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    server: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        # the broker connects to itself too (inter-broker): its certificate serves both ends
        usages = [usage, ExtendedKeyUsageOID.CLIENT_AUTH] if server else [usage]
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if server:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(signer, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class Secrets:
    """Where a secure local broker keeps its TLS files and its users' passwords."""

    root: Path

    @property
    def ca(self) -> Path:
        return self.root / "tls" / "ca.pem"

    @property
    def server(self) -> Path:
        return self.root / "tls" / "server.pem"

    @property
    def client_cert(self) -> Path:
        return self.root / "tls" / "client.pem"

    @property
    def client_key(self) -> Path:
        return self.root / "tls" / "client-key.pem"

    def password_file(self, user: str) -> Path:
        return self.root / "users" / f"{user}.password"

    def password(self, user: str) -> str:
        return self.password_file(user).read_text().strip()

    def made(self) -> bool:
        return self.server.is_file() and self.password_file(ADMIN).is_file()

    def make(self, users: tuple[str, ...] = USERS) -> None:
        """A new CA, the broker's and a client's certificates, a random password per user (kept if
        there is one already)."""
        ca_key = _key()
        ca_cert = _certificate("Booster local CA", ca_key, _name("Booster local CA"), ca_key, ca=True)
        server_key = _key()
        server = _certificate("localhost", server_key, ca_cert.subject, ca_key, ca=False, server=True)
        client_key = _key()
        client = _certificate("booster-operator", client_key, ca_cert.subject, ca_key, ca=False)
        _write(self.ca, _pem(ca_cert))
        _write(self.root / "tls" / "ca-key.pem", _pem_key(ca_key), private=True)
        _write(self.server, _pem_key(server_key) + _pem(server) + _pem(ca_cert), private=True)
        _write(self.client_cert, _pem(client) + _pem(ca_cert))
        _write(self.client_key, _pem_key(client_key), private=True)
        for user in users:
            if not self.password_file(user).is_file():
                _write(self.password_file(user), secrets.token_urlsafe(24).encode() + b"\n", private=True)

    def users(self) -> list[str]:
        return sorted(p.stem for p in (self.root / "users").glob("*.password"))

    def client_env(self, user: str) -> dict[str, str]:
        """The BOOSTER_* settings that connect as `user` (the password by file, never by value)."""
        return {
            "BOOSTER_SECURITY_PROTOCOL": "SASL_SSL",
            "BOOSTER_SASL_MECHANISM": "SCRAM-SHA-512",
            "BOOSTER_SASL_USERNAME": user,
            "BOOSTER_SASL_PASSWORD_FILE": str(self.password_file(user)),
            "BOOSTER_SSL_CA_FILE": str(self.ca),
        }
