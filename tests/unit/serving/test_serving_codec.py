"""The V2 tensor codec: every datatype both ways, raw and typed, and a precise error for every bad tensor."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.contracts.inference import grpc_service_pb2 as pb
from modelyard.serving.codec import CONTENTS_FIELD, TensorCodec, fill_contents
from modelyard.serving.domain.errors import InvalidArgument, ResourceExhausted
from modelyard.serving.domain.model import Signature, TensorSpec
from modelyard.serving.domain.tensors import DTYPES, to_raw

pytestmark = pytest.mark.unit

SAMPLES = {
    "BOOL": np.array([[True, False, True]]),
    "UINT8": np.array([[0, 7, 255]], dtype=np.uint8),
    "UINT16": np.array([[0, 7, 65535]], dtype=np.uint16),
    "UINT32": np.array([[0, 7, 2**32 - 1]], dtype=np.uint32),
    "UINT64": np.array([[0, 7, 2**64 - 1]], dtype=np.uint64),
    "INT8": np.array([[-128, 0, 127]], dtype=np.int8),
    "INT16": np.array([[-(2**15), 0, 2**15 - 1]], dtype=np.int16),
    "INT32": np.array([[-(2**31), 0, 2**31 - 1]], dtype=np.int32),
    "INT64": np.array([[-(2**63), 0, 2**63 - 1]], dtype=np.int64),
    "FP16": np.array([[-1.5, 0.0, 65504.0]], dtype=np.float16),
    "FP32": np.array([[-1.5, 0.25, 3.4e38]], dtype=np.float32),
    "FP64": np.array([[-1.5, 0.25, 1e300]], dtype=np.float64),
    "BYTES": np.array([[b"", b"abc", "\u00e9t\u00e9".encode()]], dtype=np.object_),
}


def codec_for(datatype: str, shape: tuple[int, ...] = (-1, 3), **options: object) -> TensorCodec:
    spec = TensorSpec("x", datatype, shape)
    return TensorCodec(Signature((spec,), (TensorSpec("y", datatype, shape),)), **options)  # type: ignore[arg-type]


def request(datatype: str, array: np.ndarray, *, raw: bool) -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name="m", id="r-1")
    tensor = message.inputs.add(name="x", datatype=datatype, shape=array.shape)
    if raw:
        message.raw_input_contents.append(to_raw(array))
    else:
        fill_contents(tensor.contents, datatype, array)
    return message


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "typed"])
@pytest.mark.parametrize("datatype", sorted(SAMPLES))
def test_every_datatype_round_trips(datatype: str, raw: bool) -> None:
    array = SAMPLES[datatype]
    codec = codec_for(datatype)
    message = request(datatype, array, raw=raw)

    decoded = codec.decode(message)

    assert decoded.raw is raw
    assert decoded.outputs == ("y",)
    assert decoded.inputs["x"].shape == array.shape
    np.testing.assert_array_equal(decoded.inputs["x"], array)
    response = codec.encode(message, "1", ["y"], [decoded.inputs["x"]], raw)
    assert (response.model_name, response.model_version, response.id) == ("m", "1", "r-1")
    output = response.outputs[0]
    assert (output.name, output.datatype, list(output.shape)) == ("y", datatype, [1, 3])
    if raw:
        assert response.raw_output_contents[0] == to_raw(array)
    else:
        values = getattr(output.contents, CONTENTS_FIELD[datatype])
        np.testing.assert_array_equal(np.array(values, dtype=DTYPES[datatype]), array.ravel())


def test_str_outputs_are_encoded_as_utf8_bytes() -> None:
    codec = codec_for("BYTES")
    message = request("BYTES", SAMPLES["BYTES"], raw=False)
    response = codec.encode(message, "1", ["y"], [np.array([["a", "\u00e9"]], dtype=np.object_)], False)
    assert list(response.outputs[0].contents.bytes_contents) == [b"a", "\u00e9".encode()]


def test_parameters_are_passed_through_and_requested_outputs_honoured() -> None:
    spec_in = TensorSpec("x", "FP32", (-1, 3))
    codec = TensorCodec(Signature((spec_in,), (TensorSpec("a", "FP32", (-1,)), TensorSpec("b", "FP32", (-1,)))))
    message = request("FP32", SAMPLES["FP32"], raw=True)
    message.parameters["tenant"].string_param = "acme"
    message.outputs.add(name="b")

    decoded = codec.decode(message)
    response = codec.encode(message, "1", decoded.outputs, [np.zeros(1, np.float32)], True)

    assert decoded.outputs == ("b",)
    assert response.parameters["tenant"].string_param == "acme"


def _bad(message: pb.ModelInferRequest, codec: TensorCodec | None = None) -> str:
    with pytest.raises(InvalidArgument) as caught:
        (codec or codec_for("FP32")).decode(message)
    return str(caught.value)


def fp32_request(**changes: object) -> pb.ModelInferRequest:
    message = request("FP32", SAMPLES["FP32"], raw=True)
    for key, value in changes.items():
        setattr(message.inputs[0], key, value)
    return message


def test_wrong_datatype_names_the_tensor() -> None:
    assert _bad(fp32_request(datatype="FP64")) == "input 'x': datatype 'FP64', the model expects FP32"


def test_wrong_shape_names_the_tensor() -> None:
    message = fp32_request()
    message.inputs[0].shape[:] = [3, 1]
    assert _bad(message) == "input 'x': shape [3, 1] does not match the model's [-1, 3]"


def test_wrong_raw_length_names_the_tensor() -> None:
    message = fp32_request()
    message.raw_input_contents[0] = b"\0" * 8
    assert _bad(message) == "input 'x': raw content is 8 bytes; shape [1, 3] of FP32 needs 12"


def test_wrong_element_count_in_typed_contents() -> None:
    message = request("FP32", SAMPLES["FP32"], raw=False)
    message.inputs[0].contents.fp32_contents.append(1.0)
    assert _bad(message) == "input 'x': 4 elements in contents, shape [1, 3] needs 3"


def test_typed_contents_in_the_wrong_field() -> None:
    message = request("FP32", SAMPLES["FP32"], raw=False)
    message.inputs[0].contents.ClearField("fp32_contents")
    message.inputs[0].contents.int64_contents.extend([1, 2, 3])
    assert _bad(message) == "input 'x': contents in int64_contents; datatype FP32 uses fp32_contents"


def test_mixed_raw_and_typed_contents() -> None:
    message = fp32_request()
    message.inputs[0].contents.fp32_contents.extend([1, 2, 3])
    assert _bad(message) == "input 'x': has typed contents and raw_input_contents; use one"


def test_missing_unexpected_and_duplicate_inputs() -> None:
    two = TensorCodec(
        Signature((TensorSpec("x", "FP32", (-1, 3)), TensorSpec("z", "FP32", (-1, 3))), (TensorSpec("y", "FP32", ()),))
    )
    assert _bad(fp32_request(), two) == "missing input 'z'"
    assert "unexpected input 'w'" in _bad(fp32_request(name="w"))
    message = fp32_request()
    message.inputs.append(message.inputs[0])
    message.raw_input_contents.append(message.raw_input_contents[0])
    assert _bad(message) == "input 'x' is given twice"


def test_raw_entry_count_must_match_inputs() -> None:
    message = fp32_request()
    message.raw_input_contents.append(b"")
    assert _bad(message) == "raw_input_contents has 2 entries for 1 inputs"


def test_unknown_requested_output() -> None:
    message = fp32_request()
    message.outputs.add(name="nope")
    assert _bad(message).startswith("unknown output 'nope'")


def test_out_of_range_typed_integers() -> None:
    message = pb.ModelInferRequest()
    message.inputs.add(name="x", datatype="INT8", shape=[1, 3]).contents.int_contents.extend([1, 2, 300])
    assert _bad(message, codec_for("INT8")) == "input 'x': a value is out of range for INT8"


def test_malformed_bytes_content() -> None:
    message = request("BYTES", SAMPLES["BYTES"], raw=True)
    message.raw_input_contents[0] = message.raw_input_contents[0][:-1]
    assert _bad(message, codec_for("BYTES")) == "input 'x': raw BYTES element 2 runs past the content"


def test_non_finite_values_pass_or_are_rejected_per_model() -> None:
    message = request("FP32", np.array([[1.0, np.nan, np.inf]], dtype=np.float32), raw=True)
    assert np.isnan(codec_for("FP32").decode(message).inputs["x"][0, 1])
    assert _bad(message, codec_for("FP32", reject_non_finite=True)) == (
        "input 'x': contains NaN or infinity, which this model rejects"
    )


def test_oversized_tensors_are_resource_exhausted() -> None:
    message = fp32_request()
    message.inputs[0].shape[:] = [2**40, 3]
    with pytest.raises(ResourceExhausted, match="input 'x'"):
        codec_for("FP32", max_elements=1000).decode(message)
