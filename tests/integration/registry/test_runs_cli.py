"""`modelyard runs list|show|compare` against an in-process registry, its runs logged through the MLflow API."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from typer.testing import CliRunner

from modelyard.cli.app import app
from modelyard.registry.testing import RunningService, registry_settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[str]:
    settings = registry_settings(tmp_path_factory.mktemp("runs"), kafka_bootstrap=kafka_bootstrap)
    with RunningService(settings) as service:
        yield service.http_url


def cli(url: str, *args: str, ok: bool = True) -> str:
    result = CliRunner().invoke(app, [*args, "--registry-url", url], env={"COLUMNS": "200"})
    assert (result.exit_code == 0) is ok, result.output
    return result.output


def log_run(http: httpx.Client, experiment: str, name: str, depth: str, rmse: float) -> str:
    created = http.post("/api/2.0/mlflow/runs/create", json={"experiment_id": experiment, "run_name": name})
    run_id: str = created.json()["run"]["info"]["run_id"]
    batch = {
        "run_id": run_id,
        "params": [{"key": "depth", "value": depth}, {"key": "seed", "value": "7"}],
        "metrics": [{"key": "rmse", "value": rmse, "timestamp": 1, "step": 0}],
        "tags": [{"key": "mlflow.source.git.commit", "value": "c0ffee"}],
    }
    assert http.post("/api/2.0/mlflow/runs/log-batch", json=batch).status_code == 200
    return run_id


def test_list_show_compare(url: str) -> None:
    with httpx.Client(base_url=url) as http:
        experiment = http.post("/api/2.0/mlflow/experiments/create", json={"name": "trees"}).json()["experiment_id"]
        shallow = log_run(http, experiment, "shallow", "3", 0.42)
        deep = log_run(http, experiment, "deep", "9", 0.31)

    listed = cli(url, "runs", "list", "--experiment", "trees", "--order-by", "metrics.rmse ASC")
    assert listed.index("deep") < listed.index("shallow") and "0.31" in listed
    assert "shallow" not in cli(url, "runs", "list", "-e", "trees", "--filter", "params.depth = '9'")
    assert "invalid filter" in cli(url, "runs", "list", "-e", "trees", "--filter", "metrics.rmse < 'x'", ok=False)

    shown = cli(url, "runs", "show", shallow)
    assert "c0ffee" in shown and "depth" in shown and "0.42" in shown
    compared = cli(url, "runs", "compare", shallow, deep)
    assert "param depth" in compared and "metric rmse" in compared and "0.31" in compared
    assert "not found" in cli(url, "runs", "show", "0" * 32, ok=False)
    assert "not found" in cli(url, "runs", "show", "nomodel@production", ok=False)
