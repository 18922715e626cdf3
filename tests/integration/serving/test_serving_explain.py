"""Explanations (issue 16): `ExplanationService/Explain` and `POST /v2/models/{name}/explain` on the whole serving
service (real gRPC and HTTP on loopback, the test broker), real skl2onnx models, shap in the worker process pool,
background samples from reference datasets next to the local models."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import numpy as np
import onnxruntime as ort
import pytest
import pytest_asyncio

from modelyard.contracts.inference import grpc_service_pb2_grpc as pb_grpc
from modelyard.contracts.serving.v1 import explanation_service_pb2 as epb
from modelyard.contracts.serving.v1 import explanation_service_pb2_grpc as epb_grpc
from modelyard.kafka.admin import ensure_topics
from modelyard.runtime import Service
from modelyard.serving import bootstrap
from modelyard.serving.bootstrap import ServingParts
from modelyard.serving.testing import ModelRepository, infer_request, plan, service_settings, wait_until
from modelyard.testing.models import TrainedModel

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]
BACKGROUND_ROWS = 50


def reference_csv(columns: dict[str, list[Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    writer.writerows(zip(*columns.values(), strict=True))
    return out.getvalue().encode()


def linear_model() -> tuple[bytes, np.ndarray, np.ndarray]:
    """LinearRegression on diabetes: ONNX, its coefficients, and 40 rows of the dataset."""
    from skl2onnx import to_onnx
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import LinearRegression

    x, y = load_diabetes(return_X_y=True)
    x = x.astype(np.float32)
    model = LinearRegression().fit(x, y)
    onnx = to_onnx(model, x[:1], target_opset={"": 17, "ai.onnx.ml": 3})
    onnx.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    return onnx.SerializeToString(), model.coef_, x[:40]


def string_model() -> tuple[bytes, dict[str, list[Any]]]:
    """A classifier of one string and two numbers (one ONNX input each), and its training data."""
    import pandas as pd
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(0)
    colors = rng.choice(["red", "green", "blue"], 300)
    a, b = rng.normal(size=300).astype(np.float32), rng.normal(size=300).astype(np.float32)
    y = ((colors == "red") ^ (a > 0.5)).astype(int)
    frame = pd.DataFrame({"color": colors, "a": a, "b": b})
    pipeline = make_pipeline(
        ColumnTransformer(
            [("color", OneHotEncoder(handle_unknown="ignore"), ["color"]), ("numbers", "passthrough", ["a", "b"])]
        ),
        LogisticRegression(),
    ).fit(frame, y)
    types = [
        ("color", StringTensorType([None, 1])),
        ("a", FloatTensorType([None, 1])),
        ("b", FloatTensorType([None, 1])),
    ]
    onnx = convert_sklearn(pipeline, initial_types=types, options={"zipmap": False}, target_opset=17)
    return onnx.SerializeToString(), {"color": list(colors), "a": a.tolist(), "b": b.tolist()}


class Stack:
    def __init__(
        self, parts: ServingParts, service: Service, linear_coef: np.ndarray, linear_background: np.ndarray
    ) -> None:
        self.parts = parts
        self.linear_coef = linear_coef
        self.linear_background = linear_background
        self.grpc = f"127.0.0.1:{service.grpc.port}"
        self.http = f"http://127.0.0.1:{service.http.port}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(
    tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str, onnx_models: dict[str, TrainedModel]
) -> AsyncIterator[Stack]:
    root = tmp_path_factory.mktemp("explain")
    repository = ModelRepository(root)
    cancer = onnx_models["breast-cancer"]
    linear, coef, linear_rows = linear_model()
    strings, string_rows = string_model()
    refs = {
        "breast_cancer": repository.add("breast_cancer", 1, cancer.onnx),
        "linear": repository.add("linear", 1, linear),
        "strings": repository.add("strings", 1, strings),
        "no_reference": repository.add("no_reference", 1, cancer.onnx),
    }
    # Reference columns named by feature location: a local model has no registered feature names.
    cancer_rows = np.loadtxt(io.BytesIO(cancer.reference_csv), delimiter=",", skiprows=1)[:, :-1]
    references = {
        "breast_cancer": {f"X[{j}]": cancer_rows[:, j].tolist() for j in range(cancer_rows.shape[1])},
        "linear": {f"X[{j}]": linear_rows[:, j].tolist() for j in range(linear_rows.shape[1])},
        "strings": {name: values[:BACKGROUND_ROWS] for name, values in string_rows.items()},
    }
    for name, columns in references.items():
        (repository.models / name / "1" / "reference.csv").write_bytes(reference_csv(columns))
    repository.write_plans(*(plan(ref) for ref in refs.values()))
    await ensure_topics(kafka_bootstrap)
    settings = service_settings(
        root, kafka_bootstrap, explain_workers=1, explain_queue=1, explain_background_rows=BACKGROUND_ROWS
    )
    parts = bootstrap.build(settings)
    running = bootstrap.service(parts)
    async with running.running():
        await wait_until(lambda: running.ready)
        yield Stack(parts, running, coef, linear_rows.astype(np.float64))


def explain_request(model: str, rows: np.ndarray, **options: Any) -> epb.ExplainRequest:
    return epb.ExplainRequest(inputs=infer_request(model, rows, request_id="why-1"), **options)


async def test_attributions_add_up_to_the_prediction_minus_the_base_value(
    stack: Stack, breast_cancer: TrainedModel
) -> None:
    rows = breast_cancer.sample[:3]
    async with grpc.aio.insecure_channel(stack.grpc) as channel:
        stub = epb_grpc.ExplanationServiceStub(channel)  # type: ignore[no-untyped-call]
        every = await stub.Explain(explain_request("breast_cancer", rows, classes=epb.CLASS_SELECTION_ALL))
        predicted = await stub.Explain(explain_request("breast_cancer", rows))

    probabilities = ort.InferenceSession(breast_cancer.onnx).run(["probabilities"], {"X": rows})[0]
    assert (every.model_name, every.model_version, every.id, every.output) == (
        "breast_cancer",
        "1",
        "why-1",
        "probabilities",
    )
    assert list(every.feature_names) == [f"X[{j}]" for j in range(30)]
    assert (every.background_rows, every.background_source) == (BACKGROUND_ROWS, "file:breast_cancer/1/reference.csv")
    assert every.method == "shap.PermutationExplainer(permutations=5)"
    assert len(every.rows) == 3
    for i, row in enumerate(every.rows):
        assert [o.index for o in row.outputs] == [0, 1]
        for o in row.outputs:
            assert len(o.attributions) == 30
            assert o.prediction == pytest.approx(probabilities[i, o.index], abs=1e-6)
            assert o.base_value + sum(o.attributions) == pytest.approx(o.prediction, abs=1e-6)
        # Two classes: what raises one probability lowers the other by as much.
        np.testing.assert_allclose(row.outputs[0].attributions, -np.array(row.outputs[1].attributions), atol=1e-6)
    for i, row in enumerate(predicted.rows):
        (chosen,) = row.outputs
        assert chosen.index == int(np.argmax(probabilities[i]))
        assert list(chosen.attributions) == list(every.rows[i].outputs[chosen.index].attributions)


async def test_a_linear_models_attributions_are_its_coefficients_times_the_distance_from_the_background_mean(
    stack: Stack,
) -> None:
    rows = stack.linear_background[5:7].astype(np.float32)
    body = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [2, 10], "data": rows.tolist()}]}
    async with httpx.AsyncClient(base_url=stack.http, timeout=120) as http:
        answer = (await http.post("/v2/models/linear/versions/1/explain", json=body)).json()

    # The whole reference (40 rows) is the background: under the sample size.
    assert (answer["output"], answer["background_rows"]) == ("variable", 40)
    by_hand = stack.linear_coef * (rows.astype(np.float64) - stack.linear_background.mean(axis=0))
    for i, row in enumerate(answer["rows"]):
        (output,) = row["outputs"]
        assert output["index"] == 0
        np.testing.assert_allclose(output["attributions"], by_hand[i], rtol=1e-4, atol=1e-3)


async def test_a_model_with_string_inputs_is_explained(stack: Stack) -> None:
    body = {
        "inputs": [
            {"name": "color", "datatype": "BYTES", "shape": [2, 1], "data": ["red", "blue"]},
            {"name": "a", "datatype": "FP32", "shape": [2, 1], "data": [0.0, 0.0]},
            {"name": "b", "datatype": "FP32", "shape": [2, 1], "data": [0.1, 0.1]},
        ],
        "explain": {"output": "probabilities", "classes": 1},
    }
    async with httpx.AsyncClient(base_url=stack.http, timeout=120) as http:
        answer = (await http.post("/v2/models/strings/explain", json=body)).json()
        inferred = (await http.post("/v2/models/strings/infer", json={"inputs": body["inputs"]})).json()

    probabilities = next(o for o in inferred["outputs"] if o["name"] == "probabilities")["data"]
    assert answer["feature_names"] == ["color", "a", "b"]
    red, blue = (row["outputs"][0] for row in answer["rows"])
    for i, output in enumerate((red, blue)):
        assert output["index"] == 1
        assert output["prediction"] == pytest.approx(probabilities[2 * i + 1], abs=1e-6)
        assert output["base_value"] + sum(output["attributions"]) == pytest.approx(output["prediction"], abs=1e-6)
    # Class 1 is "red, unless a > 0.5": being red pushes it up, being blue pulls it down.
    assert red["attributions"][0] > 0.1
    assert blue["attributions"][0] < -0.05


async def test_bad_input_gets_the_same_errors_as_inference(stack: Stack, breast_cancer: TrainedModel) -> None:
    rows = breast_cancer.sample[:2]
    malformed = infer_request("breast_cancer", rows)
    malformed.inputs[0].shape[:] = [3, 30]
    async with grpc.aio.insecure_channel(stack.grpc) as channel:
        explain = epb_grpc.ExplanationServiceStub(channel)  # type: ignore[no-untyped-call]
        infer = pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
        for request in (infer_request("nope", rows), malformed):
            with pytest.raises(grpc.aio.AioRpcError) as inferred:
                await infer.ModelInfer(request)
            with pytest.raises(grpc.aio.AioRpcError) as explained:
                await explain.Explain(epb.ExplainRequest(inputs=request))
            assert (explained.value.code(), explained.value.details()) == (
                inferred.value.code(),
                inferred.value.details(),
            )
        failures = {}
        for name, request in {
            "unknown output": explain_request("breast_cancer", rows, output="nope"),
            "integer output": explain_request("breast_cancer", rows, output="label"),
            "class index": explain_request("breast_cancer", rows, classes=epb.CLASS_SELECTION_INDEX, class_index=2),
            "no reference": explain_request("no_reference", rows),
            "too many rows": explain_request("breast_cancer", np.zeros((17, 30), dtype=np.float32)),
            "no rows": explain_request("breast_cancer", np.zeros((0, 30), dtype=np.float32)),
        }.items():
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await explain.Explain(request)
            failures[name] = (error.value.code(), error.value.details())
        explainer = stack.parts.explanations.explainer
        with explainer.reserve(), explainer.reserve():  # every place taken (one worker, one waiting)
            with pytest.raises(grpc.aio.AioRpcError) as full:
                await explain.Explain(explain_request("breast_cancer", rows))
            async with httpx.AsyncClient(base_url=stack.http, timeout=30) as http:
                body = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [2, 30], "data": rows.tolist()}]}
                busy = await http.post("/v2/models/breast_cancer/explain", json=body)

    assert failures == {
        "unknown output": (grpc.StatusCode.INVALID_ARGUMENT, "unknown output 'nope'"),
        "integer output": (
            grpc.StatusCode.INVALID_ARGUMENT,
            "output 'label' is INT64: only floating-point outputs are explained",
        ),
        "class index": (grpc.StatusCode.INVALID_ARGUMENT, "class index 2 is outside output 'probabilities'"),
        "no reference": (
            grpc.StatusCode.FAILED_PRECONDITION,
            "no_reference:1 has no reference dataset to draw a background sample from",
        ),
        "too many rows": (grpc.StatusCode.RESOURCE_EXHAUSTED, "17 rows to explain: at most 16 per request"),
        "no rows": (grpc.StatusCode.INVALID_ARGUMENT, "no rows to explain"),
    }
    assert full.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "explanation pool is full" in (full.value.details() or "")
    assert (busy.status_code, busy.headers["retry-after"]) == (429, "1")
    assert "explanation pool is full" in busy.json()["error"]


async def test_rest_refuses_malformed_explain_options(stack: Stack, breast_cancer: TrainedModel) -> None:
    data = breast_cancer.sample[:1].tolist()
    base = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 30], "data": data}]}
    async with httpx.AsyncClient(base_url=stack.http, timeout=30) as http:
        answers = [
            await http.post("/v2/models/breast_cancer/explain", json={**base, "explain": options})
            for options in ("all", {"classes": "most"}, {"output": 3})
        ]
        unknown = await http.post("/v2/models/nope/explain", json=base)
        inferred = await http.post("/v2/models/nope/infer", json=base)
    assert [a.status_code for a in answers] == [400, 400, 400]
    assert answers[1].json() == {"error": '"explain.classes" must be "predicted", "all" or a class index'}
    assert (unknown.status_code, unknown.json()) == (inferred.status_code, inferred.json())
