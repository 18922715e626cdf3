"""How the CLI reaches the services over TLS: options of the `modelyard` command itself, shared by every
subcommand (`modelyard --ca-file ca.crt models list ...`, or MODELYARD_CA_FILE and friends in the environment)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelyard.tls import ClientTls, TlsError

CaFile = Annotated[
    Path | None,
    typer.Option(
        "--ca-file",
        envvar="MODELYARD_CA_FILE",
        help="CA bundle (PEM) to verify the services with: talk TLS to them (gRPC and HTTPS).",
        show_default=False,
    ),
]
ClientCert = Annotated[
    Path | None,
    typer.Option(
        "--client-cert",
        envvar="MODELYARD_CLIENT_CERT_FILE",
        help="Client certificate (PEM) for services that require mutual TLS.",
        show_default=False,
    ),
]
ClientKey = Annotated[
    Path | None,
    typer.Option(
        "--client-key",
        envvar="MODELYARD_CLIENT_KEY_FILE",
        help="Private key (PEM) of --client-cert.",
        show_default=False,
    ),
]


# Set by the `modelyard` command's own options before any subcommand runs; one command per process (or per
# invocation, in tests), so a module value is all the state there is.
_configured: ClientTls | None = None


def tls_options(ca_file: CaFile = None, client_cert: ClientCert = None, client_key: ClientKey = None) -> None:
    """Take the `modelyard` command's TLS options (its callback calls this before any subcommand runs)."""
    global _configured
    _configured = None
    if ca_file is None:
        if client_cert or client_key:
            raise typer.BadParameter("a client certificate is only sent over TLS: give --ca-file too")
        return
    try:
        _configured = ClientTls(ca_file, client_cert, client_key)
    except TlsError as exc:
        raise typer.BadParameter(str(exc)) from None


def client_tls() -> ClientTls | None:
    """The TLS the `modelyard` command was given, or None: plaintext."""
    return _configured
