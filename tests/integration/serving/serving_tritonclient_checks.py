"""Run by test_tritonclient.py in a subprocess: tritonclient's bundled `inference` protos and ours cannot share
a process. Usage: python serving_tritonclient_checks.py GRPC_URL HTTP_URL MODEL.onnx. Exits non-zero on any failure."""

from __future__ import annotations

import sys

import numpy as np
import onnxruntime as ort
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

TYPES = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}


def check(client: object, module: object, rows: np.ndarray, expected: list[np.ndarray]) -> None:
    c, m = client, module
    assert c.is_server_live() and c.is_server_ready()  # type: ignore[attr-defined]
    assert c.is_model_ready("breast_cancer")  # type: ignore[attr-defined]
    assert not c.is_model_ready("breast_cancer", "9")  # type: ignore[attr-defined]
    c.get_server_metadata()  # type: ignore[attr-defined]
    c.get_model_metadata("breast_cancer")  # type: ignore[attr-defined]

    inputs = [m.InferInput("X", list(rows.shape), "FP32")]  # type: ignore[attr-defined]
    inputs[0].set_data_from_numpy(rows)
    result = c.infer("breast_cancer", inputs, request_id="triton-1")  # type: ignore[attr-defined]
    np.testing.assert_array_equal(result.as_numpy("label"), expected[0])
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected[1], rtol=1e-6)
    assert result.get_response(**({"as_json": True} if m is grpcclient else {}))["id"] == "triton-1"
    only = [m.InferRequestedOutput("probabilities")]  # type: ignore[attr-defined]
    result = c.infer("breast_cancer", inputs, outputs=only, model_version="1")  # type: ignore[attr-defined]
    assert result.as_numpy("label") is None

    typed_inputs = []
    for datatype, dtype in TYPES.items():
        data = (
            np.array([["a", "", "\u00e9"]], dtype=np.object_) if datatype == "BYTES" else np.array([[0, 1, 1]], dtype)
        )
        tensor = m.InferInput(f"in_{datatype}", [1, 3], datatype)  # type: ignore[attr-defined]
        tensor.set_data_from_numpy(data)
        typed_inputs.append((tensor, datatype, data))
    result = c.infer("identity_all", [t for t, _, _ in typed_inputs])  # type: ignore[attr-defined]
    for _, datatype, data in typed_inputs:
        got = result.as_numpy(f"out_{datatype}")
        if datatype == "BYTES":
            assert [e.decode() for e in got.ravel()] == list(data.ravel()), got
        else:
            np.testing.assert_array_equal(got, data)

    try:
        c.infer("nope", inputs)  # type: ignore[attr-defined]
    except InferenceServerException as exc:
        assert "unknown model 'nope'" in str(exc), exc
    else:
        raise AssertionError("unknown model answered")

    c.unload_model("breast_cancer")  # type: ignore[attr-defined]
    assert not c.is_model_ready("breast_cancer")  # type: ignore[attr-defined]
    c.load_model("breast_cancer")  # type: ignore[attr-defined]
    assert c.is_model_ready("breast_cancer")  # type: ignore[attr-defined]
    c.get_model_repository_index()  # type: ignore[attr-defined]


def main() -> None:
    grpc_url, http_url, model_path = sys.argv[1:4]
    rows = np.random.default_rng(0).normal(size=(4, 30)).astype(np.float32)
    expected = ort.InferenceSession(model_path).run(None, {"X": rows})
    check(grpcclient.InferenceServerClient(grpc_url), grpcclient, rows, expected)
    print("grpc ok")
    check(httpclient.InferenceServerClient(http_url), httpclient, rows, expected)
    print("http ok")


if __name__ == "__main__":
    main()
