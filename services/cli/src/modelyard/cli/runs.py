"""`modelyard runs list|show|compare`: experiment tracking from the command line, over the registry's REST API.

`show` also answers "which run produced the model serving now": `modelyard runs show fraud@production`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.table import Table

from modelyard.cli.connection import client_tls
from modelyard.cli.registry import Token

runs_app = typer.Typer(help="Experiment tracking: runs, their parameters, metrics and lineage.", no_args_is_help=True)
out = Console()
err = Console(stderr=True, soft_wrap=True)

RegistryUrl = Annotated[
    str, typer.Option("--registry-url", envvar="MODELYARD_REGISTRY_URL", help="registry HTTP base URL")
]


def _fail(message: str) -> NoReturn:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


@contextlib.contextmanager
def _registry(url: str, token: str) -> Iterator[httpx.Client]:
    tls = client_tls()
    headers = {"authorization": f"Bearer {token}"} if token else {}
    verify: Any = tls.ssl_context() if tls else True
    with httpx.Client(base_url=url, headers=headers, timeout=30, verify=verify) as client:
        yield client


def _get(client: httpx.Client, path: str, **params: Any) -> dict[str, Any]:
    try:
        response = client.get(path, params=params)
    except httpx.HTTPError as exc:
        _fail(f"registry at {client.base_url} unreachable: {exc}")
    body: dict[str, Any] = response.json() if response.headers.get("content-type") == "application/json" else {}
    if response.status_code != 200:
        _fail(body.get("message") or f"HTTP {response.status_code}")
    return body


def _resolve(client: httpx.Client, ref: str) -> str:
    """A run id, or the run behind a model version: `<model>@<alias>` or `<model>/<version>`."""
    if "@" in ref:
        model, alias = ref.split("@", 1)
        version = _get(client, f"/v1/models/{model}/aliases/{alias}")
    elif "/" in ref:
        model, number = ref.split("/", 1)
        version = _get(client, f"/v1/models/{model}/versions/{number}")
    else:
        return ref
    run_id = str(version.get("lineage", {}).get("run_id", ""))
    if not run_id:
        _fail(f"{ref} was registered without a run: its lineage is in `modelyard models show`")
    return run_id


def _time(ms: int | None) -> str:
    return "" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _metric(run: dict[str, Any], key: str) -> str:
    metric = run["metrics"].get(key)
    return "" if metric is None else f"{metric['value']:.6g}"


@runs_app.command("list")
def list_runs(
    experiment: Annotated[str, typer.Option("--experiment", "-e", help="experiment name or id")] = "0",
    filter: Annotated[str, typer.Option("--filter", help='MLflow\'s grammar, e.g. "metrics.rmse < 0.5"')] = "",
    order_by: Annotated[list[str] | None, typer.Option("--order-by", help="e.g. 'metrics.rmse ASC'")] = None,
    limit: Annotated[int, typer.Option(help="at most this many runs")] = 50,
    registry_url: RegistryUrl = "http://127.0.0.1:8081",
    token: Token = "",
) -> None:
    """Runs of an experiment, newest first unless ordered otherwise."""
    with _registry(registry_url, token) as client:
        found = _get(
            client, "/v1/runs", experiment=experiment, filter=filter, order_by=order_by or [], page_size=limit
        )["runs"]
    metric_keys = sorted({key for run in found for key in run["metrics"]})[:6]
    table = Table(title=f"runs of experiment {experiment}")
    for column in ("run", "name", "status", "user", "started", *metric_keys):
        table.add_column(column)
    for run in found:
        cells = (run["run_id"], run["name"], run["status"], run["user"], _time(run["start_ms"]))
        table.add_row(*cells, *(_metric(run, key) for key in metric_keys))
    out.print(table)


@runs_app.command()
def show(
    run: Annotated[str, typer.Argument(help="run id, or <model>@<alias> / <model>/<version> for the run behind it")],
    registry_url: RegistryUrl = "http://127.0.0.1:8081",
    token: Token = "",
) -> None:
    """A run in full: status, code, parameters, latest metrics, datasets and files."""
    with _registry(registry_url, token) as client:
        found = _get(client, f"/v1/runs/{_resolve(client, run)}")
    out.print(f"[bold]run {found['run_id']}[/bold] ({found['name']}) in experiment {found['experiment_id']}")
    out.print(f"  status {found['status']}, by {found['user']}, {_time(found['start_ms'])} - {_time(found['end_ms'])}")
    out.print(f"  source {found['source'] or '-'}, git commit {found['git_commit'] or '-'}")
    for title, rows in (
        ("parameters", sorted(found["params"].items())),
        (
            "metrics (latest)",
            [(k, f"{m['value']:.6g} (step {m['step']})") for k, m in sorted(found["metrics"].items())],
        ),
        ("datasets", [(i["name"], f"{i['digest']} {i['context']}".strip()) for i in found["inputs"]]),
        ("files", [(f["path"], f"{f['size_bytes']} bytes {f['digest']}") for f in found["files"]]),
    ):
        if rows:
            table = Table(title=title, show_header=False)
            for key, value in rows:
                table.add_row(key, str(value))
            out.print(table)


@runs_app.command()
def compare(
    runs: Annotated[list[str], typer.Argument(help="two or more run ids (or <model>@<alias>, <model>/<version>)")],
    registry_url: RegistryUrl = "http://127.0.0.1:8081",
    token: Token = "",
) -> None:
    """Parameters and latest metrics of runs side by side; rows that differ are highlighted."""
    if len(runs) < 2:
        _fail("compare needs two runs or more")
    with _registry(registry_url, token) as client:
        found = [_get(client, f"/v1/runs/{_resolve(client, ref)}") for ref in runs]
    table = Table(title="runs compared")
    table.add_column("")
    for run in found:
        table.add_column(f"{run['name']}\n{run['run_id'][:8]}")
    rows = [
        (f"param {k}", [r["params"].get(k, "") for r in found]) for k in sorted({k for r in found for k in r["params"]})
    ]
    keys = sorted({k for r in found for k in r["metrics"]})
    rows += [(f"metric {k}", [_metric(r, k) for r in found]) for k in keys]
    for label, values in rows:
        style = "yellow" if len(set(values)) > 1 else None
        table.add_row(label, *values, style=style)
    out.print(table)
