"""The V2 (Open Inference Protocol) tensor codec: ModelInferRequest tensors to numpy arrays and back.

Every datatype onnxruntime knows travels both as raw little-endian bytes (`raw_input_contents`, BYTES elements
each prefixed with a 4-byte little-endian length) and as typed `contents`. A `TensorCodec` is built once per
loaded model version so that the per-request path only looks things up; every error names the tensor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from modelyard.contracts.inference import grpc_service_pb2 as pb
from modelyard.serving.domain.errors import InvalidArgument, ResourceExhausted
from modelyard.serving.domain.model import Signature, TensorSpec
from modelyard.serving.domain.ports import DecodedRequest
from modelyard.serving.domain.tensors import DTYPES, Array, datatype_of, element_bytes, split_bytes_elements, to_raw

# The typed-contents field of each datatype. 8/16-bit integers ride in the 32-bit fields; FP16 has no typed
# field in the protocol, and we accept it in fp32_contents (as KServe's JSON clients send it) rather than refuse.
CONTENTS_FIELD: dict[str, str] = {
    "BOOL": "bool_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "FP16": "fp32_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def fill_contents(contents: pb.InferTensorContents, datatype: str, array: Array) -> None:
    """Write an array into the typed field of its datatype (BYTES as UTF-8 for str elements)."""
    field = getattr(contents, CONTENTS_FIELD[datatype])
    if datatype == "BYTES":
        field.extend(element_bytes(e) for e in array.ravel().tolist())
    else:
        field.extend(array.ravel().tolist())


@dataclass(frozen=True, slots=True)
class _Input:
    spec: TensorSpec
    dtype: np.dtype[np.generic]
    field: str
    check_finite: bool
    fixed_dims: tuple[tuple[int, int], ...]  # (axis, size) of every dimension that is not variable


class TensorCodec:
    """Decodes requests for, and encodes responses of, one model signature."""

    def __init__(self, signature: Signature, *, reject_non_finite: bool = False, max_elements: int = 1 << 26) -> None:
        self.signature = signature
        self.max_elements = max_elements
        self._inputs = {
            spec.name: _Input(
                spec,
                DTYPES[spec.datatype],
                CONTENTS_FIELD[spec.datatype],
                reject_non_finite and spec.datatype in ("FP16", "FP32", "FP64"),
                tuple((axis, size) for axis, size in enumerate(spec.shape) if size >= 0),
            )
            for spec in signature.inputs
        }
        self._outputs = {spec.name: spec for spec in signature.outputs}
        self._all_outputs = tuple(self._outputs)

    def decode(self, request: pb.ModelInferRequest) -> DecodedRequest:
        raw_contents = request.raw_input_contents
        if raw_contents and len(raw_contents) != len(request.inputs):
            raise InvalidArgument(
                f"raw_input_contents has {len(raw_contents)} entries for {len(request.inputs)} inputs"
            )
        arrays: dict[str, Array] = {}
        for index, tensor in enumerate(request.inputs):
            name = tensor.name
            expected = self._inputs.get(name)
            if expected is None:
                raise InvalidArgument(f"unexpected input '{name}': the model's inputs are {sorted(self._inputs)}")
            if name in arrays:
                raise InvalidArgument(f"input '{name}' is given twice")
            if tensor.datatype != expected.spec.datatype:
                raise InvalidArgument(
                    f"input '{name}': datatype {tensor.datatype!r}, the model expects {expected.spec.datatype}"
                )
            shape = tuple(tensor.shape)
            count = self._element_count(expected, shape)
            if raw_contents:
                if tensor.HasField("contents") and tensor.contents.ListFields():
                    raise InvalidArgument(f"input '{name}': has typed contents and raw_input_contents; use one")
                array = self._from_raw(expected, raw_contents[index], shape, count)
            else:
                array = self._from_contents(expected, tensor.contents, shape, count)
            if expected.check_finite and not np.isfinite(array).all():
                raise InvalidArgument(f"input '{name}': contains NaN or infinity, which this model rejects")
            arrays[name] = array
        if len(arrays) != len(self._inputs):
            missing = sorted(set(self._inputs) - set(arrays))
            raise InvalidArgument(f"missing input{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}")
        return DecodedRequest(arrays, self._requested_outputs(request), raw=bool(raw_contents))

    def encode(
        self, request: pb.ModelInferRequest, version: str, names: Sequence[str], arrays: Sequence[Array], raw: bool
    ) -> pb.ModelInferResponse:
        response = pb.ModelInferResponse(model_name=request.model_name, model_version=version, id=request.id)
        if request.parameters:
            for key, value in request.parameters.items():
                response.parameters[key].CopyFrom(value)
        for name, array in zip(names, arrays, strict=True):
            datatype = datatype_of(array)
            output = response.outputs.add(name=name, datatype=datatype, shape=array.shape)
            if raw:
                response.raw_output_contents.append(to_raw(array))
            else:
                fill_contents(output.contents, datatype, array)
        return response

    def _element_count(self, expected: _Input, shape: tuple[int, ...]) -> int:
        spec = expected.spec
        if (
            len(shape) != len(spec.shape)
            or (shape and min(shape) < 0)
            or any(shape[axis] != size for axis, size in expected.fixed_dims)
        ):
            raise InvalidArgument(
                f"input '{spec.name}': shape {list(shape)} does not match the model's {list(spec.shape)}"
            )
        count = math.prod(shape)
        if count > self.max_elements:
            raise ResourceExhausted(
                f"input '{spec.name}': {count} elements, more than this server accepts ({self.max_elements})"
            )
        return count

    @staticmethod
    def _from_raw(expected: _Input, raw: bytes, shape: tuple[int, ...], count: int) -> Array:
        name = expected.spec.name
        if expected.spec.datatype == "BYTES":
            try:
                elements = split_bytes_elements(raw)
            except ValueError as exc:
                raise InvalidArgument(f"input '{name}': {exc}") from None
            if len(elements) != count:
                raise InvalidArgument(
                    f"input '{name}': raw BYTES content holds {len(elements)} elements, shape needs {count}"
                )
            return np.array(elements, dtype=np.object_).reshape(shape)
        needed = count * expected.dtype.itemsize
        if len(raw) != needed:
            raise InvalidArgument(
                f"input '{name}': raw content is {len(raw)} bytes; shape {list(shape)} of "
                f"{expected.spec.datatype} needs {needed}"
            )
        return np.frombuffer(raw, dtype=expected.dtype).reshape(shape)

    @staticmethod
    def _from_contents(expected: _Input, contents: pb.InferTensorContents, shape: tuple[int, ...], count: int) -> Array:
        name = expected.spec.name
        fields = contents.ListFields()
        if not fields:
            if count == 0:
                return np.empty(shape, dtype=expected.dtype)
            raise InvalidArgument(f"input '{name}': no contents (neither typed contents nor raw_input_contents)")
        if len(fields) > 1 or fields[0][0].name != expected.field:
            given = ", ".join(field.name for field, _ in fields)
            raise InvalidArgument(
                f"input '{name}': contents in {given}; datatype {expected.spec.datatype} uses {expected.field}"
            )
        values = fields[0][1]
        if len(values) != count:
            raise InvalidArgument(
                f"input '{name}': {len(values)} elements in contents, shape {list(shape)} needs {count}"
            )
        try:
            return np.array(values, dtype=expected.dtype).reshape(shape)
        except OverflowError as exc:
            raise InvalidArgument(f"input '{name}': a value is out of range for {expected.spec.datatype}") from exc

    def _requested_outputs(self, request: pb.ModelInferRequest) -> tuple[str, ...]:
        if not request.outputs:
            return self._all_outputs
        names = tuple(output.name for output in request.outputs)
        for name in names:
            if name not in self._outputs:
                raise InvalidArgument(f"unknown output '{name}': the model's outputs are {list(self._all_outputs)}")
        return names
