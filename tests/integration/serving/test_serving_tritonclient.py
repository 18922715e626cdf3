"""Stock tritonclient[grpc] and tritonclient[http] against the whole service, unchanged (in a subprocess)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from modelyard.runtime import Service
from modelyard.serving.testing import ModelRepository

pytestmark = pytest.mark.integration

CHECKS = Path(__file__).with_name("serving_tritonclient_checks.py")


async def test_tritonclient_grpc_and_http(service: Service, repository: ModelRepository) -> None:
    model = repository.models / "breast_cancer" / "1" / "model.onnx"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CHECKS),
        f"127.0.0.1:{service.grpc.port}",
        f"127.0.0.1:{service.http.port}",
        str(model),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(120):
        output, _ = await process.communicate()
    assert process.returncode == 0, output.decode()
    assert output.decode().split() == ["grpc", "ok", "http", "ok"]
