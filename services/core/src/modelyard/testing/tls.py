"""TLS material for tests, made once per session: the stack's PKI (a CA, a server certificate for 127.0.0.1 and
localhost, a client certificate for mutual TLS) and a stranger's CA and client certificate that nothing trusts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from modelyard.certificates import CertificateAuthority, Issued, LocalPki
from modelyard.tls import ClientTls


@dataclass(frozen=True)
class TlsMaterial:
    pki: LocalPki
    stranger_ca_file: Path  # a CA that signed nothing the stack uses
    stranger_client: Issued  # a client certificate signed by the stranger's CA

    def server_settings(self, *, mutual: bool = True) -> dict[str, object]:
        """A service's `tls` settings: serving TLS (asking for client certificates when `mutual`), and calling the
        other services over TLS with the client certificate."""
        values: dict[str, object] = {
            "cert_file": self.pki.server.cert_file,
            "key_file": self.pki.server.key_file,
            "ca_file": self.pki.ca_file,
            "client_cert_file": self.pki.client.cert_file,
            "client_key_file": self.pki.client.key_file,
        }
        if mutual:
            values["client_ca_file"] = self.pki.ca_file
        return values

    @property
    def client(self) -> ClientTls:
        return ClientTls(self.pki.ca_file, self.pki.client.cert_file, self.pki.client.key_file)


@pytest.fixture(scope="session")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    directory = tmp_path_factory.mktemp("tls")
    stranger = CertificateAuthority("stranger CA")
    return TlsMaterial(
        LocalPki.ensure(directory / "stack"),
        stranger.write(directory / "stranger" / "ca.crt"),
        stranger.issue(directory / "stranger", "intruder", client=True),
    )
