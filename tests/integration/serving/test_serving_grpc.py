"""inference.GRPCInferenceService on a real grpc.aio server with real skl2onnx models."""

from __future__ import annotations

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from modelyard.contracts.inference import grpc_service_pb2 as pb
from modelyard.serving.adapters.plans import plan_from_message
from modelyard.serving.codec import fill_contents
from modelyard.serving.domain.tensors import DTYPES, to_raw
from modelyard.serving.testing import ONNX_TYPES, Harness, ModelRepository, infer_request, plan, serving_on_loopback
from modelyard.testing.models import TrainedModel

pytestmark = pytest.mark.integration


@pytest.fixture
def rows(breast_cancer: TrainedModel) -> np.ndarray:
    return breast_cancer.sample[:5]


async def test_infer_matches_onnxruntime_and_echoes_the_request_id(
    harness: Harness, breast_cancer: TrainedModel, rows: np.ndarray
) -> None:
    request = infer_request("breast_cancer", rows, request_id="req-42")
    request.parameters["tenant"].string_param = "acme"

    response = await harness.stub.ModelInfer(request)

    expected = ort.InferenceSession(breast_cancer.onnx).run(None, {"X": rows})
    assert (response.model_name, response.model_version, response.id) == ("breast_cancer", "1", "req-42")
    assert response.parameters["tenant"].string_param == "acme"
    assert [o.name for o in response.outputs] == ["label", "probabilities"]
    labels = np.frombuffer(response.raw_output_contents[0], np.int64)
    probabilities = np.frombuffer(response.raw_output_contents[1], np.float32).reshape(5, 2)
    np.testing.assert_array_equal(labels, expected[0])
    np.testing.assert_allclose(probabilities, expected[1], rtol=1e-6)


async def test_requested_outputs_only(harness: Harness, rows: np.ndarray) -> None:
    request = infer_request("breast_cancer", rows)
    request.outputs.add(name="probabilities")
    response = await harness.stub.ModelInfer(request)
    assert [o.name for o in response.outputs] == ["probabilities"]
    assert list(response.outputs[0].shape) == [5, 2]


SAMPLES = {
    "BOOL": np.array([[True, False, True]]),
    "BYTES": np.array([[b"a", b"", "\u00e9".encode()]], dtype=np.object_),
}


def sample(datatype: str) -> np.ndarray:
    if datatype in SAMPLES:
        return SAMPLES[datatype]
    return np.array([[0, 1, 100]], dtype=DTYPES[datatype])


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "typed"])
async def test_every_onnxruntime_tensor_type(harness: Harness, raw: bool) -> None:
    request = pb.ModelInferRequest(model_name="identity_all")
    for datatype in ONNX_TYPES:
        tensor = request.inputs.add(name=f"in_{datatype}", datatype=datatype, shape=[1, 3])
        if raw:
            request.raw_input_contents.append(to_raw(sample(datatype)))
        else:
            fill_contents(tensor.contents, datatype, sample(datatype))

    response = await harness.stub.ModelInfer(request)

    by_name = {o.name: (i, o) for i, o in enumerate(response.outputs)}
    for datatype in ONNX_TYPES:
        index, output = by_name[f"out_{datatype}"]
        assert output.datatype == datatype
        if raw:
            assert response.raw_output_contents[index] == to_raw(sample(datatype))
        else:
            expected = pb.InferTensorContents()
            fill_contents(expected, datatype, sample(datatype))
            assert output.contents == expected


async def _status(harness: Harness, request: pb.ModelInferRequest) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await harness.stub.ModelInfer(request)
    return caught.value.code(), caught.value.details() or ""


async def test_error_codes(harness: Harness, rows: np.ndarray) -> None:
    assert await _status(harness, infer_request("nope", rows)) == (grpc.StatusCode.NOT_FOUND, "unknown model 'nope'")
    assert await _status(harness, infer_request("breast_cancer", rows, version="7")) == (
        grpc.StatusCode.NOT_FOUND,
        "version 7 of model 'breast_cancer' is not served",
    )
    assert await _status(harness, infer_request("breast_cancer", rows[:, :29])) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "input 'X': shape [5, 29] does not match the model's [-1, 30]",
    )
    wrong_type = infer_request("breast_cancer", rows)
    wrong_type.inputs[0].datatype = "FP64"
    assert await _status(harness, wrong_type) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "input 'X': datatype 'FP64', the model expects FP32",
    )
    wrong_length = infer_request("breast_cancer", rows)
    wrong_length.raw_input_contents[0] = wrong_length.raw_input_contents[0][:-4]
    code, details = await _status(harness, wrong_length)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("input 'X': raw content is 596 bytes")
    oversized = infer_request("breast_cancer", np.zeros((50_000, 30), np.float32))
    code, _ = await _status(harness, oversized)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_loading_model_is_unavailable(harness: Harness, breast_cancer: TrainedModel, rows: np.ndarray) -> None:
    loading = plan_from_message(plan(harness.repository.add("later", 1, breast_cancer.onnx)))
    harness.core.manager.loading(loading)
    code, details = await _status(harness, infer_request("later", rows))
    assert (code, details) == (grpc.StatusCode.UNAVAILABLE, "model 'later' is loading")


async def test_health_metadata_and_repository(harness: Harness) -> None:
    stub = harness.stub
    assert (await stub.ServerLive(pb.ServerLiveRequest())).live
    assert (await stub.ServerReady(pb.ServerReadyRequest())).ready
    assert (await stub.ModelReady(pb.ModelReadyRequest(name="breast_cancer"))).ready
    assert (await stub.ModelReady(pb.ModelReadyRequest(name="breast_cancer", version="1"))).ready
    assert not (await stub.ModelReady(pb.ModelReadyRequest(name="breast_cancer", version="2"))).ready
    server = await stub.ServerMetadata(pb.ServerMetadataRequest())
    assert server.name == "modelyard" and "model_repository" in server.extensions
    meta = await stub.ModelMetadata(pb.ModelMetadataRequest(name="breast_cancer"))
    assert (meta.name, list(meta.versions), meta.platform) == ("breast_cancer", ["1"], "onnxruntime_onnx")
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [("X", "FP32", [-1, 30])]
    assert [(t.name, t.datatype) for t in meta.outputs] == [("label", "INT64"), ("probabilities", "FP32")]

    await stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="breast_cancer"))
    assert not (await stub.ModelReady(pb.ModelReadyRequest(name="breast_cancer"))).ready
    index = await stub.RepositoryIndex(pb.RepositoryIndexRequest())
    assert ("breast_cancer", "", "UNAVAILABLE") in [(m.name, m.version, m.state) for m in index.models]
    await stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="breast_cancer"))
    index = await stub.RepositoryIndex(pb.RepositoryIndexRequest(ready=True))
    assert sorted((m.name, m.version, m.state) for m in index.models) == [
        ("breast_cancer", "1", "READY"),
        ("identity_all", "1", "READY"),
    ]
    assert [ref.version for ref in harness.status.of("unloaded")] == [1]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="nope"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_spans_carry_the_request_id_and_the_trace_reaches_the_prediction_record(
    repository: ModelRepository, rows: np.ndarray
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with serving_on_loopback(repository, tracer=provider.get_tracer("test"), stream_enabled=True) as traced:
        await traced.stub.ModelInfer(infer_request("breast_cancer", rows, request_id="traced-1"))
        assert traced.core.stream is not None
        (prediction,) = traced.core.stream.take(10)

    (span,) = exporter.get_finished_spans()
    assert span.name == "ModelInfer" and span.attributes["inference.request_id"] == "traced-1"  # type: ignore[index]
    assert (
        prediction.traceparent
        == f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-{span.context.trace_flags:02x}"
    )
