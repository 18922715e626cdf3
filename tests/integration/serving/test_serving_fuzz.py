"""Random ModelInferRequests at a running server: it never crashes and always answers with a status.

An unhandled exception in the servicer would surface as UNKNOWN; every other status is a deliberate answer.
"""

from __future__ import annotations

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelyard.contracts.inference import grpc_service_pb2 as pb
from modelyard.serving.codec import CONTENTS_FIELD
from modelyard.serving.testing import ONNX_TYPES, Harness

pytestmark = pytest.mark.integration

DATATYPES = [*ONNX_TYPES, "BF16", "", "fp32"]
NAMES = ["X", *(f"in_{t}" for t in ONNX_TYPES), "", "nope"]
FIELDS = sorted(set(CONTENTS_FIELD.values()))
SCALARS = {
    "bool_contents": st.booleans(),
    "int_contents": st.integers(-(2**31), 2**31 - 1),
    "int64_contents": st.integers(-(2**63), 2**63 - 1),
    "uint_contents": st.integers(0, 2**32 - 1),
    "uint64_contents": st.integers(0, 2**64 - 1),
    "fp32_contents": st.floats(width=32),
    "fp64_contents": st.floats(),
    "bytes_contents": st.binary(max_size=8),
}


@st.composite
def tensors(draw: st.DrawFn) -> tuple[pb.ModelInferRequest.InferInputTensor, bytes | None]:
    tensor = pb.ModelInferRequest.InferInputTensor(
        name=draw(st.sampled_from(NAMES)),
        datatype=draw(st.sampled_from(DATATYPES)),
        shape=draw(st.lists(st.one_of(st.integers(-2, 4), st.integers(-(2**62), 2**62)), max_size=3)),
    )
    if draw(st.booleans()):
        field = draw(st.sampled_from(FIELDS))
        getattr(tensor.contents, field).extend(draw(st.lists(SCALARS[field], max_size=12)))
    raw = draw(st.one_of(st.none(), st.binary(max_size=96)))
    return tensor, raw


@st.composite
def requests(draw: st.DrawFn) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(
        model_name=draw(st.sampled_from(["breast_cancer", "identity_all", "nope", ""])),
        model_version=draw(st.sampled_from(["", "", "1", "2", "x", "-1"])),
        id=draw(st.text(max_size=8)),
    )
    for tensor, raw in draw(st.lists(tensors(), max_size=4)):
        request.inputs.append(tensor)
        if raw is not None:
            request.raw_input_contents.append(raw)
    for name in draw(st.lists(st.sampled_from(["label", "probabilities", "out_FP32", "nope"]), max_size=2)):
        request.outputs.add(name=name)
    return request


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request=requests(), garbage=st.binary(max_size=64))
async def test_random_requests_always_get_a_deliberate_status(
    harness: Harness, request: pb.ModelInferRequest, garbage: bytes
) -> None:
    try:
        await harness.stub.ModelInfer(request, timeout=10)
    except grpc.aio.AioRpcError as exc:
        assert exc.code() != grpc.StatusCode.UNKNOWN, exc.details()
    async with grpc.aio.insecure_channel(harness.address) as channel:
        raw_call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        try:
            await raw_call(garbage, timeout=10)  # not necessarily a valid message at all
        except grpc.aio.AioRpcError as exc:
            assert exc.code() != grpc.StatusCode.UNKNOWN, exc.details()
    assert (await harness.stub.ServerLive(pb.ServerLiveRequest(), timeout=10)).live
