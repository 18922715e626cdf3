"""`modelyard`: the command line. Each command group lives in its own module of this package and is
registered here, e.g. `app.add_typer(models.app, name="models")`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from modelyard.cli import governance
from modelyard.cli.backup import backup_app
from modelyard.cli.certs import certs
from modelyard.cli.connection import CaFile, ClientCert, ClientKey, tls_options
from modelyard.cli.demo import demo
from modelyard.cli.registry import admin_app, alias_app, models_app
from modelyard.cli.retrain import retrain
from modelyard.cli.runs import runs_app
from modelyard.cli.stack import StackError
from modelyard.cli.status import status
from modelyard.cli.trace import trace_app
from modelyard.cli.up import err, up
from modelyard.cli.users import DEFAULT_USERS_FILE, token_of

app = typer.Typer(
    name="modelyard",
    help="Modelyard: registry, serving, monitoring and governance for ONNX models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def options(
    as_user: Annotated[
        str | None,
        typer.Option("--as", metavar="NAME", help="Call as this user of `modelyard up --users` (their token)."),
    ] = None,
    users_file: Annotated[
        Path, typer.Option(envvar="MODELYARD_USERS_FILE", help="Where `modelyard up --users` wrote the tokens.")
    ] = DEFAULT_USERS_FILE,
    ca_file: CaFile = None,
    client_cert: ClientCert = None,
    client_key: ClientKey = None,
) -> None:
    """Modelyard: registry, serving, monitoring and governance for ONNX models."""
    tls_options(ca_file, client_cert, client_key)
    if as_user is not None:
        try:
            token = token_of(users_file, as_user)
        except StackError as exc:
            err.print(f"[red]error:[/] {exc}")
            raise typer.Exit(1) from None
        # Every command reads its --token default from MODELYARD_TOKEN; --as names whose it is (an explicit
        # --token still wins).
        os.environ["MODELYARD_TOKEN"] = token


app.command()(up)
app.command()(status)
app.command()(demo)
app.command()(certs)
app.command()(retrain)
app.add_typer(models_app, name="models")
app.add_typer(alias_app, name="alias")
app.add_typer(admin_app, name="registry")
app.add_typer(backup_app, name="backup")
governance.register(app)
app.add_typer(trace_app, name="trace")
app.add_typer(runs_app, name="runs")


def main() -> None:
    app()
