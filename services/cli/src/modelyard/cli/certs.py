"""`modelyard certs DIR --host NAME ...`: a private CA and the certificates of a small deployment (docker compose, a
laptop cluster): one server certificate for the given names, one client certificate for mutual TLS."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

out = Console()


def certs(
    directory: Annotated[Path, typer.Argument(help="Where ca.crt, server.crt/.key and client.crt/.key go.")],
    host: Annotated[
        list[str] | None,
        typer.Option(
            "--host", help="A name or address clients dial (repeatable); default: 127.0.0.1, localhost and ::1."
        ),
    ] = None,
) -> None:
    """Make a CA, a server certificate and a client certificate (kept when all are already there)."""
    from modelyard.certificates import LOCAL_HOSTS, LocalPki  # cryptography: only this command needs it

    try:
        pki = LocalPki.ensure(directory, host or LOCAL_HOSTS)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="DIRECTORY") from None
    for path in (pki.ca_file, pki.server.cert_file, pki.server.key_file, pki.client.cert_file, pki.client.key_file):
        out.print(str(path))
