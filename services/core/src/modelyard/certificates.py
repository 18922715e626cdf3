"""A private certificate authority for a local stack (`modelyard up --tls`) and for tests: a CA, server certificates
for the names a client dials, and client certificates for mutual TLS. ECDSA P-256, PEM files, keys owner-only.

Production certificates come from the organisation's PKI or cert-manager; this is not a substitute for either.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
VALIDITY = datetime.timedelta(days=365)


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, as PEM files."""

    cert_file: Path
    key_file: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "modelyard"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _san(hosts: Iterable[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if private:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
    else:
        path.write_bytes(data)


class CertificateAuthority:
    """A self-signed CA that issues server and client certificates."""

    def __init__(self, name: str = "modelyard local CA") -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def write(self, path: Path) -> Path:
        _write(path, self.pem)
        return path

    def issue(self, directory: Path, stem: str, *, hosts: Iterable[str] = (), client: bool = False) -> Issued:
        """`<stem>.crt` and `<stem>.key` in `directory`: a server (and client) certificate for `hosts` (names and IP
        addresses), or, with `client`, a client certificate only, whose common name is `stem`."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        # A server certificate may also be its service's client certificate towards the other services (one
        # certificate per pod, as cert-manager issues them with both usages).
        usages = (
            [ExtendedKeyUsageOID.CLIENT_AUTH]
            if client
            else [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(stem))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
        )
        hosts = list(hosts)
        if hosts:
            builder = builder.add_extension(_san(hosts), critical=False)
        certificate = builder.sign(self._key, hashes.SHA256())
        issued = Issued(directory / f"{stem}.crt", directory / f"{stem}.key")
        _write(issued.cert_file, certificate.public_bytes(serialization.Encoding.PEM))
        pem_key = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _write(issued.key_file, pem_key, private=True)
        return issued


@dataclass(frozen=True)
class LocalPki:
    """The files of a local stack's TLS: one CA, one server certificate for every service on this host, one client
    certificate that the services and the CLI present for mutual TLS."""

    ca_file: Path
    server: Issued
    client: Issued

    @classmethod
    def at(cls, directory: Path) -> LocalPki:
        return cls(
            directory / "ca.crt",
            Issued(directory / "server.crt", directory / "server.key"),
            Issued(directory / "client.crt", directory / "client.key"),
        )

    @property
    def files(self) -> tuple[Path, ...]:
        return self.ca_file, self.server.cert_file, self.server.key_file, self.client.cert_file, self.client.key_file

    @classmethod
    def ensure(cls, directory: Path, hosts: Iterable[str] = LOCAL_HOSTS) -> LocalPki:
        """The PKI in `directory`: kept when it is all there (a second `up` keeps the CA the CLI trusts), made when
        none of it is; a partial set is someone's files, never overwritten (ValueError)."""
        existing = cls.at(directory)
        present = [path.name for path in existing.files if path.is_file()]
        if len(present) == len(existing.files):
            return existing
        if present:
            missing = sorted({path.name for path in existing.files} - set(present))
            raise ValueError(f"{directory} has {', '.join(present)} but not {', '.join(missing)}: complete or empty it")
        authority = CertificateAuthority()
        authority.write(existing.ca_file)
        authority.issue(directory, "server", hosts=hosts)
        authority.issue(directory, "client", client=True)
        return existing
