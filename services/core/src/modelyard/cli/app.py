"""`modelyard`: the command line. Each command group lives in its own module of this package and is
registered here, e.g. `app.add_typer(models.app, name="models")`."""

from __future__ import annotations

import typer

from modelyard.cli import governance
from modelyard.cli.demo import demo
from modelyard.cli.registry import admin_app, alias_app, models_app
from modelyard.cli.status import status
from modelyard.cli.up import up

app = typer.Typer(
    name="modelyard",
    help="Modelyard: registry, serving, monitoring and governance for ONNX models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(up)
app.command()(status)
app.command()(demo)
app.add_typer(models_app, name="models")
app.add_typer(alias_app, name="alias")
app.add_typer(admin_app, name="registry")
governance.register(app)


def main() -> None:
    app()
