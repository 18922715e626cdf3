"""`modelyard trace verify` on files that are not what they should be: a one-line reason and exit status 1, never
a traceback; and `trace ID` is `trace show ID`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from modelyard.cli.app import app
from modelyard.cli.trace_explain import logged_request
from modelyard.contracts.inference import grpc_service_pb2 as ipb

pytestmark = pytest.mark.unit
EXPORT = '{"type":"header","public_key":"00","key_id":"k"}\n'


@pytest.mark.parametrize(
    ("trace", "export", "problem"),
    [
        ("not json", EXPORT, "trace.json: not JSON"),
        ("[1, 2]", EXPORT, "trace.json: not a trace document"),
        ('{"type": "x"}', "nope\n", "audit.jsonl line 1: not JSON"),
        ('{"type": "x"}', '{"seq": 1}\n', "audit.jsonl line 1: not an audit export record"),
        ('{"type": "x"}', EXPORT, "does not verify: not a signed prediction trace"),
        ('{"trace": 1, "explanation": {}}', EXPORT, "does not verify: not a signed prediction trace"),
    ],
)
def test_verify_explains_a_bad_file(tmp_path: Path, trace: str, export: str, problem: str) -> None:
    (tmp_path / "trace.json").write_text(trace)
    (tmp_path / "audit.jsonl").write_text(export)
    args = ["trace", "verify", str(tmp_path / "trace.json"), "--audit-export", str(tmp_path / "audit.jsonl")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and problem in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_a_missing_file_is_named_without_its_path(tmp_path: Path) -> None:
    (tmp_path / "trace.json").write_text("{}")
    args = ["trace", "verify", str(tmp_path / "trace.json"), "--audit-export", str(tmp_path / "gone.jsonl")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "cannot read gone.jsonl: FileNotFoundError" in result.output


def test_a_request_id_alone_is_traced() -> None:
    result = CliRunner().invoke(app, ["trace", "some-id", "--governance", "127.0.0.1:1"])
    assert result.exit_code == 1 and "UNAVAILABLE" in result.output  # `show` ran: it asked governance


SIGNATURE = ipb.ModelMetadataResponse(
    name="m",
    versions=["2"],
    inputs=[
        ipb.ModelMetadataResponse.TensorMetadata(name="X", datatype="FP32", shape=[-1, 3]),
        ipb.ModelMetadataResponse.TensorMetadata(name="color", datatype="BYTES", shape=[-1, 1]),
    ],
)


def test_a_logged_prediction_becomes_its_inference_request_in_the_model_datatypes() -> None:
    logged = [{"name": "color", "strings": ["red"]}, {"name": "X", "values": [1.5, 2.0, -3.0]}]
    request = logged_request("r-1", SIGNATURE, logged)
    assert (request.model_name, request.model_version, request.id) == ("m", "2", "r-1")
    x, color = request.inputs
    assert (x.name, x.datatype, list(x.shape), list(x.contents.fp32_contents)) == ("X", "FP32", [1, 3], [1.5, 2, -3])
    assert (color.datatype, list(color.shape), list(color.contents.bytes_contents)) == ("BYTES", [1, 1], [b"red"])


@pytest.mark.parametrize(
    ("x", "problem"),
    [
        (None, "the prediction log holds no input 'X'"),
        ({"name": "X", "values": [1.0, 2.0, 3.0], "truncated": True}, "input 'X' was cut at the prediction log's"),
        ({"name": "X", "values": [1.0, 2.0]}, "input 'X': 2 logged values do not make rows of shape [3]"),
    ],
)
def test_a_logged_prediction_that_is_not_whole_is_not_explained(x: dict[str, Any] | None, problem: str) -> None:
    logged = [{"name": "color", "strings": ["red"]}, *([x] if x else [])]
    with pytest.raises(ValueError, match=re.escape(problem)):
        logged_request("r-1", SIGNATURE, logged)
