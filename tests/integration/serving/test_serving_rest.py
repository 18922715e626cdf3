"""REST `/v2/...` (JSON tensors) and `/metrics` on the whole service."""

from __future__ import annotations

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from modelyard.runtime import Service
from modelyard.testing.models import TrainedModel

pytestmark = pytest.mark.integration


async def test_json_inference_errors_and_metrics(service: Service, breast_cancer: TrainedModel) -> None:
    rows = breast_cancer.sample[:2]
    body = {
        "id": "rest-1",
        "parameters": {"tenant": "acme"},
        "inputs": [{"name": "X", "datatype": "FP32", "shape": [2, 30], "data": rows.tolist()}],
        "outputs": [{"name": "probabilities"}],
    }
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.http.port}") as http:
        answer = (await http.post("/v2/models/breast_cancer/infer", json=body)).json()
        not_found = await http.post("/v2/models/nope/infer", json=body)
        body["inputs"][0]["shape"] = [3, 30]  # type: ignore[index]
        bad_count = await http.post("/v2/models/breast_cancer/versions/1/infer", json=body)
        metadata = (await http.get("/v2/models/breast_cancer")).json()
        ready = await http.get("/v2/models/breast_cancer/versions/1/ready")
        metrics = (await http.get("/metrics")).text

    expected = ort.InferenceSession(breast_cancer.onnx).run(["probabilities"], {"X": rows})[0]
    assert (answer["id"], answer["model_version"], answer["parameters"]) == ("rest-1", "1", {"tenant": "acme"})
    (output,) = answer["outputs"]
    assert (output["name"], output["datatype"], output["shape"]) == ("probabilities", "FP32", [2, 2])
    np.testing.assert_allclose(np.array(output["data"]).reshape(2, 2), expected, rtol=1e-6)
    assert (not_found.status_code, not_found.json()) == (404, {"error": "unknown model 'nope'"})
    assert bad_count.status_code == 400
    assert bad_count.json()["error"] == "input 'X': 60 elements in data, shape [3, 30] needs 90"
    assert metadata["inputs"] == [{"name": "X", "datatype": "FP32", "shape": [-1, 30]}]
    assert ready.status_code == 200
    assert 'modelyard_serving_requests_total{code="OK",model="breast_cancer",version="1"}' in metrics
    assert 'modelyard_serving_in_flight{model="breast_cancer",version="1"} 0.0' in metrics
    assert 'modelyard_serving_request_duration_seconds_bucket{le="0.0001",model="breast_cancer",version="1"}' in metrics
