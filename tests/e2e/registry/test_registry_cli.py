"""The registry as a process, driven by the `modelyard` CLI: register (with upload progress) and download."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from modelyard.kafka.embedded import free_port
from modelyard.testing.models import LABEL_COLUMN, TrainedModel

pytestmark = pytest.mark.e2e
TOKEN = "e2e-publisher-token-0123456789"


@pytest.fixture(scope="module")
def registry_process(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[str]:
    """A registry process on free ports; yields its gRPC address once /readyz says ready."""
    data = tmp_path_factory.mktemp("registry-e2e")
    grpc_port, http_port = free_port(), free_port()
    env = {
        **os.environ,
        "MODELYARD_REGISTRY_DATA_DIR": str(data),
        "MODELYARD_REGISTRY_GRPC_PORT": str(grpc_port),
        "MODELYARD_REGISTRY_HTTP_PORT": str(http_port),
        "MODELYARD_REGISTRY_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "MODELYARD_REGISTRY_AUTH": (
            f'{{"allow_anonymous": false, "tokens": {{"{TOKEN}": {{"principal": "dana", "roles": ["admin"]}}}}}}'
        ),
    }
    log = (data / "registry.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "modelyard.registry"], env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (data / "registry.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{http_port}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "registry did not become ready"
            time.sleep(0.1)
        yield f"127.0.0.1:{grpc_port}"
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def cli(registry: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "modelyard.cli", *args, "--registry", registry, "--token", TOKEN],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_cli_round_trip(registry_process: str, onnx_models: dict[str, TrainedModel], tmp_path: Path) -> None:
    # Few invocations: each CLI process pays ~3 s of imports. tests/integration/registry covers every command.
    model = onnx_models["breast-cancer"]
    reference = tmp_path / "reference.csv"
    reference.write_bytes(model.reference_csv)
    registered = cli(
        registry_process,
        "models", "register", "tumours", str(model.write(tmp_path)),
        "--reference-dataset", str(reference), "--label-column", LABEL_COLUMN,
    )  # fmt: skip
    assert "registered tumours version 1" in registered
    out = tmp_path / "downloaded.onnx"
    cli(registry_process, "models", "download", "tumours", "--version", "1", "--output", str(out))
    assert out.read_bytes() == model.onnx
