"""TLS for every server and every client of the platform: one settings block (`tls` of each service's settings)
and the one place that turns certificate files into gRPC credentials, uvicorn options and ssl contexts.

A server serves TLS when it has a certificate and key, and asks every caller for a client certificate signed by
`client_ca_file` when that is set (mutual TLS). A client trusts `ca_file` (and presents `client_cert_file` to a
server that wants one); without a CA it talks plaintext, as the local stack does.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    import grpc


class TlsError(RuntimeError):
    """A certificate or key that cannot be used; the message names the file, for a person to fix."""


def read_pem(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TlsError(f"cannot read the {what} {path}: {exc.strerror}") from None


@dataclass(frozen=True)
class ClientTls:
    """How a client reaches servers over TLS: the CA bundle it trusts, and its own certificate for mutual TLS."""

    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise TlsError("a client certificate needs its key, and a key its certificate")

    def grpc_credentials(self) -> grpc.ChannelCredentials:
        import grpc  # here: every `modelyard` command loads the settings, and with them this module

        identity: dict[str, bytes] = {}
        if self.cert_file is not None and self.key_file is not None:
            identity = {
                "private_key": read_pem(self.key_file, "client key"),
                "certificate_chain": read_pem(self.cert_file, "client certificate"),
            }
        return grpc.ssl_channel_credentials(read_pem(self.ca_file, "CA bundle"), **identity)

    def ssl_context(self) -> ssl.SSLContext:
        """For HTTPS clients (httpx `verify=`): verifies the server against the CA bundle and its host name."""
        try:
            context = ssl.create_default_context(cafile=str(self.ca_file))
            if self.cert_file is not None:
                context.load_cert_chain(str(self.cert_file), str(self.key_file) if self.key_file else None)
        except (OSError, ssl.SSLError) as exc:
            raise TlsError(f"cannot load the client TLS files ({self.ca_file}, {self.cert_file}): {exc}") from None
        return context


def grpc_channel(address: str, tls: ClientTls | None, options: list[tuple[str, Any]] | None = None) -> grpc.Channel:
    """A blocking channel to `address`: TLS when `tls` is given, else plaintext."""
    import grpc

    if tls is None:
        return grpc.insecure_channel(address, options=options)
    return grpc.secure_channel(address, tls.grpc_credentials(), options=options)


def grpc_aio_channel(
    address: str, tls: ClientTls | None, options: list[tuple[str, Any]] | None = None
) -> grpc.aio.Channel:
    """An asyncio channel to `address`: TLS when `tls` is given, else plaintext."""
    import grpc

    if tls is None:
        return grpc.aio.insecure_channel(address, options=options)
    return grpc.aio.secure_channel(address, tls.grpc_credentials(), options=options)


def http_scheme(tls: ClientTls | None) -> str:
    return "http" if tls is None else "https"


class TlsSettings(BaseModel):
    """TLS of a service's gRPC and HTTP servers, and of its clients of other services."""

    model_config = ConfigDict(frozen=True)

    cert_file: Path | None = Field(None, description="server certificate chain (PEM): serve gRPC and HTTPS")
    key_file: Path | None = Field(None, description="private key (PEM) of cert_file")
    client_ca_file: Path | None = Field(
        None, description="mutual TLS: callers must present a certificate signed by this CA (PEM)"
    )
    ca_file: Path | None = Field(
        None, description="CA bundle (PEM) that the service's clients of other services trust; set: they use TLS"
    )
    client_cert_file: Path | None = Field(
        None, description="certificate (PEM) this service presents to servers that require mutual TLS"
    )
    client_key_file: Path | None = Field(None, description="private key (PEM) of client_cert_file")
    terminated_by_proxy: bool = Field(
        False, description="a proxy or mesh in front terminates TLS: production then accepts plaintext servers"
    )

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("tls.cert_file and tls.key_file go together: set both to serve TLS, or neither")
        if self.client_ca_file is not None and self.cert_file is None:
            raise ValueError("tls.client_ca_file (mutual TLS) needs the server's own tls.cert_file and tls.key_file")
        if (self.client_cert_file is None) != (self.client_key_file is None):
            raise ValueError("tls.client_cert_file and tls.client_key_file go together: set both, or neither")
        if self.client_cert_file is not None and self.ca_file is None:
            raise ValueError("tls.client_cert_file needs tls.ca_file: a client certificate is only sent over TLS")
        return self

    @property
    def serves_tls(self) -> bool:
        return self.cert_file is not None

    @property
    def client(self) -> ClientTls | None:
        """What the service's clients of other services use; None: plaintext."""
        if self.ca_file is None:
            return None
        return ClientTls(self.ca_file, self.client_cert_file, self.client_key_file)

    def grpc_server_credentials(self) -> grpc.ServerCredentials | None:
        """None when the server is plaintext."""
        import grpc

        if self.cert_file is None or self.key_file is None:
            return None
        pair = (read_pem(self.key_file, "server key"), read_pem(self.cert_file, "server certificate"))
        client_ca = read_pem(self.client_ca_file, "client CA") if self.client_ca_file else None
        return grpc.ssl_server_credentials(
            [pair], root_certificates=client_ca, require_client_auth=client_ca is not None
        )

    def uvicorn_options(self) -> dict[str, Any]:
        """`uvicorn.Config` keyword arguments: none when the server is plaintext."""
        if self.cert_file is None:
            return {}
        options: dict[str, Any] = {"ssl_certfile": str(self.cert_file), "ssl_keyfile": str(self.key_file)}
        if self.client_ca_file is not None:
            options |= {"ssl_ca_certs": str(self.client_ca_file), "ssl_cert_reqs": ssl.CERT_REQUIRED}
        return options
