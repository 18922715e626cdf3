"""Every registry CLI command against an in-process registry (tests/e2e runs a few against a real process)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelyard.cli.app import app
from modelyard.registry.testing import RunningService, registry_settings
from modelyard.testing.models import LABEL_COLUMN, TrainedModel

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def address(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[str]:
    settings = registry_settings(tmp_path_factory.mktemp("cli"), kafka_bootstrap=kafka_bootstrap, check_interval_s=0.05)
    with RunningService(settings) as service:
        yield service.grpc_address


def run(address: str, *args: str, ok: bool = True) -> str:
    result = CliRunner().invoke(app, [*args, "--registry", address], env={"COLUMNS": "200"})
    assert (result.exit_code == 0) is ok, result.output
    return result.output


def test_every_command(address: str, onnx_models: dict[str, TrainedModel], tmp_path: Path) -> None:
    model = onnx_models["iris"]
    reference = tmp_path / "iris.csv"
    reference.write_bytes(model.reference_csv)
    onnx_file = str(model.write(tmp_path))
    registered = run(
        address,
        "models", "register", "flowers", onnx_file, "--reference-dataset", str(reference),
        "--label-column", LABEL_COLUMN, "--metric", "accuracy=0.97", "--code-revision", "c0ffee", "--tag", "k=v",
    )  # fmt: skip
    assert "registered flowers version 1" in registered
    named = run(address, "models", "register", "flowers", onnx_file, "--feature-names", "X=sl, sw,pl,pw")
    assert "registered flowers version 2" in named
    assert "sl, sw, pl, pw" in run(address, "models", "show", "flowers", "--version", "2")
    assert "4 columns but 2 feature names" in run(
        address, "models", "register", "flowers", onnx_file, "--feature-names", "X=a,b", ok=False
    )
    assert "flowers" in run(address, "models", "list")
    details = run(address, "models", "show", "flowers", "--version", "1")
    assert "sepal length (cm)" in details and "[N, 4]" in details and "accuracy" in details and "c0ffee" in details

    assert "version 2 (new)" in run(address, "alias", "set", "flowers", "candidate", "2", "--reason", "try it")
    assert "version 1 (was 2)" in run(address, "alias", "set", "flowers", "candidate", "1")
    history = run(address, "alias", "history", "flowers", "candidate")
    assert "try it" in history and "anonymous" in history
    assert "candidate" in run(address, "models", "show", "flowers")

    out = tmp_path / "out.onnx"
    run(address, "models", "download", "flowers", "--version", "2", "--output", str(out))
    assert out.read_bytes() == model.onnx
    assert "NOT_FOUND" in run(address, "models", "show", "no-such-model", ok=False)
    assert "NOT_FOUND" in run(address, "alias", "set", "flowers", "candidate", "9", ok=False)
