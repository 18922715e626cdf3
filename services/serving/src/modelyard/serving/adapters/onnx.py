"""onnxruntime behind the ModelRunner/ModelLoader ports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import onnxruntime as ort

from modelyard.serving.domain.errors import InvalidArgument
from modelyard.serving.domain.model import Signature, TensorSpec, VersionRef
from modelyard.serving.domain.tensors import Array

# onnxruntime's type strings for every tensor type it runs on CPU that V2 can carry.
V2_DATATYPE: dict[str, str] = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}


def _spec(arg: ort.NodeArg) -> TensorSpec:
    datatype = V2_DATATYPE.get(arg.type)
    if datatype is None:
        raise ValueError(f"tensor '{arg.name}' has type {arg.type}, which the inference protocol cannot carry")
    # Symbolic ("batch") and unknown (None) dimensions are both variable.
    shape = tuple(dim if isinstance(dim, int) and dim >= 0 else -1 for dim in arg.shape)
    return TensorSpec(arg.name, datatype, shape)


class OnnxRunner:
    def __init__(self, session: ort.InferenceSession) -> None:
        self._session = session
        self._signature = Signature(
            tuple(_spec(arg) for arg in session.get_inputs()), tuple(_spec(arg) for arg in session.get_outputs())
        )
        self._string_inputs = frozenset(spec.name for spec in self._signature.inputs if spec.datatype == "BYTES")

    @property
    def signature(self) -> Signature:
        return self._signature

    def run(self, inputs: Mapping[str, Array], outputs: Sequence[str]) -> list[Array]:
        if self._string_inputs:
            inputs = {name: _as_str(name, a) if name in self._string_inputs else a for name, a in inputs.items()}
        return self._session.run(list(outputs), inputs)  # type: ignore[no-any-return]

    def close(self) -> None:
        # onnxruntime frees the session with its last reference; dropping ours is what unloading means here.
        del self._session


def _as_str(name: str, array: Array) -> Array:
    # onnxruntime takes string tensors as str objects (bytes would become "b'...'"); V2 BYTES are bytes.
    try:
        decoded = [e.decode() if isinstance(e, bytes) else e for e in array.ravel()]
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"input '{name}': element is not UTF-8, which this model's string input needs") from exc
    return np.array(decoded, dtype=np.object_).reshape(array.shape)


class OnnxLoader:
    """Builds onnxruntime CPU sessions; thread counts are per session (2 cores here: 1 each by default)."""

    def __init__(self, intra_op_threads: int = 1, inter_op_threads: int = 1) -> None:
        self.intra_op_threads = intra_op_threads
        self.inter_op_threads = inter_op_threads

    def load(self, ref: VersionRef, artifact: bytes) -> OnnxRunner:
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.intra_op_threads
        options.inter_op_num_threads = self.inter_op_threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            session = ort.InferenceSession(artifact, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad models
            raise ValueError(f"{ref} is not a loadable ONNX model: {exc}") from exc
        return OnnxRunner(session)
