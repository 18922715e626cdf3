"""The Open Inference Protocol over REST (`/v2/...`), including Triton's binary tensor data extension.

A REST request is converted into the same ModelInferRequest the gRPC transport receives, with every input as raw
bytes, and answered by the same data plane; the response is converted back to JSON (binary outputs appended
after the JSON header when asked for, as tritonclient[http] does by default).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from fastapi import APIRouter, Request, Response

from modelyard.contracts.inference import grpc_service_pb2 as pb
from modelyard.runtime.errors import client_message
from modelyard.serving.dataplane import DataPlane
from modelyard.serving.domain.errors import InvalidArgument, ResourceExhausted, ServingError
from modelyard.serving.domain.tensors import DTYPES, split_bytes_elements, to_raw
from modelyard.serving.entrypoints.errors import ERRORS
from modelyard.serving.entrypoints.grpc import EXTENSIONS, SERVER_NAME
from modelyard.serving.handlers import Lifecycle

HEADER_LENGTH = "Inference-Header-Content-Length"
BINARY_SIZE = "binary_data_size"
_RESERVED_PARAMETERS = frozenset({"binary_data_output", "binary_data", BINARY_SIZE})
# JSON bodies larger than this are decoded in a worker thread rather than on the event loop.
DECODE_INLINE_BYTES = 256 << 10
MAX_DIM = 2**63 - 1  # int64, as in ModelInferRequest
MAX_RANK = 64


def _json(body: object, status: int = 200) -> Response:
    return Response(json.dumps(body), status_code=status, media_type="application/json")


def _error(exc: ServingError) -> Response:
    return _json({"error": client_message(exc)}, ERRORS.http(exc))


def inference_router(
    dataplane: DataPlane,
    lifecycle: Lifecycle,
    version: str,
    ready: Callable[[], bool],
    max_json_bytes: int = 8 << 20,
) -> APIRouter:
    """Each route is named after the gRPC method it stands for: its operation in the access table. The body's size
    is limited by the HTTP edge (`max_request_bytes`); its JSON part here, before decoding."""
    router = APIRouter(prefix="/v2", tags=["inference"])

    @router.get("", name="ServerMetadata")
    async def server_metadata() -> Response:
        return _json({"name": SERVER_NAME, "version": version, "extensions": list(EXTENSIONS)})

    @router.get("/health/live", name="ServerLive")
    async def live() -> Response:
        return Response(status_code=200)

    @router.get("/health/ready", name="ServerReady")
    async def server_ready() -> Response:
        return Response(status_code=200 if ready() else 400)

    @router.get("/models/{model}/ready", name="ModelReady")
    @router.get("/models/{model}/versions/{model_version}/ready", name="ModelReady")
    async def model_ready(model: str, model_version: str = "") -> Response:
        return Response(status_code=200 if dataplane.is_ready(model, model_version) else 400)

    @router.get("/models/{model}", name="ModelMetadata")
    @router.get("/models/{model}/versions/{model_version}", name="ModelMetadata")
    async def model_metadata(model: str, model_version: str = "") -> Response:
        try:
            meta = dataplane.metadata(model, model_version)
        except ServingError as exc:
            return _error(exc)
        tensors = [
            [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in group]
            for group in (meta.inputs, meta.outputs)
        ]
        return _json(
            {
                "name": meta.name,
                "versions": list(meta.versions),
                "platform": meta.platform,
                "inputs": tensors[0],
                "outputs": tensors[1],
            }
        )

    @router.post("/models/{model}/infer", name="ModelInfer")
    @router.post("/models/{model}/versions/{model_version}/infer", name="ModelInfer")
    async def infer(model: str, request: Request, model_version: str = "") -> Response:
        body = await request.body()
        header_length = request.headers.get(HEADER_LENGTH)
        try:
            json_bytes = _json_length(body, header_length)
            if json_bytes > max_json_bytes:
                raise ResourceExhausted(
                    f"JSON part of {json_bytes} bytes is over {max_json_bytes}: send large tensors as binary data"
                )
            if json_bytes > DECODE_INLINE_BYTES:  # decoding takes long enough to hold up every other caller
                message, binary_outputs = await asyncio.to_thread(
                    to_infer_request, model, model_version, body, header_length
                )
            else:
                message, binary_outputs = to_infer_request(model, model_version, body, header_length)
            response = await dataplane.infer(message)
        except ServingError as exc:
            return _error(exc)
        header, blobs = from_infer_response(response, binary_outputs)
        if not blobs:
            return Response(header, media_type="application/json")
        return Response(
            b"".join([header, *blobs]),
            media_type="application/octet-stream",
            headers={HEADER_LENGTH: str(len(header))},
        )

    @router.post("/repository/index", name="RepositoryIndex")
    async def repository_index(request: Request) -> Response:
        body = await request.body()
        try:
            document = json.loads(body) if body else {}
        except (ValueError, RecursionError):
            document = None
        if not isinstance(document, dict):
            return _error(InvalidArgument('request body must be a JSON object, e.g. {"ready": true}'))
        rows = lifecycle.index(bool(document.get("ready", False)))
        return _json([{"name": n, "version": v, "state": s, "reason": r} for n, v, s, r in rows])

    @router.post("/repository/models/{model}/load", name="RepositoryModelLoad")
    async def load(model: str) -> Response:
        try:
            await lifecycle.load_model(model)
        except ServingError as exc:
            return _error(exc)
        return _json({})

    @router.post("/repository/models/{model}/unload", name="RepositoryModelUnload")
    async def unload(model: str) -> Response:
        try:
            await lifecycle.unload_model(model)
        except ServingError as exc:
            return _error(exc)
        return _json({})

    return router


def _json_length(body: bytes, header_length: str | None) -> int:
    if header_length is None:
        return len(body)
    if not header_length.isdigit() or int(header_length) > len(body):
        raise InvalidArgument(f"{HEADER_LENGTH} must be a number of bytes within the request body")
    return int(header_length)


def to_infer_request(
    model: str, version: str, body: bytes, header_length: str | None
) -> tuple[pb.ModelInferRequest, frozenset[str] | bool]:
    """The ModelInferRequest of a REST body, and which outputs to answer in binary (True: all of them)."""
    split = _json_length(body, header_length)
    try:
        document = json.loads(body[:split])
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidArgument(f"request body is not V2 JSON: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("inputs"), list):
        raise InvalidArgument("request body has no 'inputs' list")
    message = pb.ModelInferRequest(model_name=model, model_version=version, id=str(document.get("id", "")))
    _set_parameters(message.parameters, document.get("parameters") or {})
    offset = split
    for entry in document["inputs"]:
        tensor, raw, offset = _input(entry, body, offset)
        message.inputs.append(tensor)
        message.raw_input_contents.append(raw)
    binary: set[str] = set()
    for entry in document.get("outputs") or []:
        name = str(entry.get("name", ""))
        message.outputs.add(name=name)
        if (entry.get("parameters") or {}).get("binary_data", False):
            binary.add(name)
    all_binary = bool((document.get("parameters") or {}).get("binary_data_output", False))
    return message, True if all_binary else frozenset(binary)


def _input(entry: Any, body: bytes, offset: int) -> tuple[pb.ModelInferRequest.InferInputTensor, bytes, int]:
    if not isinstance(entry, dict):
        raise InvalidArgument("each input must be a JSON object")
    name, datatype, shape = str(entry.get("name", "")), str(entry.get("datatype", "")), entry.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and -1 <= d <= MAX_DIM for d in shape):
        raise InvalidArgument(f"input '{name}': shape must be a list of integers from -1 to {MAX_DIM}")
    if len(shape) > MAX_RANK:
        raise InvalidArgument(f"input '{name}': at most {MAX_RANK} dimensions")
    dtype = DTYPES.get(datatype)
    if dtype is None:
        raise InvalidArgument(f"input '{name}': unknown datatype {datatype!r}")
    tensor = pb.ModelInferRequest.InferInputTensor(name=name, datatype=datatype, shape=shape)
    size = (entry.get("parameters") or {}).get(BINARY_SIZE)
    if size is not None:
        if not isinstance(size, int) or size < 0 or offset + size > len(body):
            raise InvalidArgument(f"input '{name}': {BINARY_SIZE} {size!r} runs past the request body")
        return tensor, body[offset : offset + size], offset + size
    if "data" not in entry:
        raise InvalidArgument(f"input '{name}': neither 'data' nor binary data")
    count = math.prod(shape) if all(d >= 0 for d in shape) else -1
    try:
        if datatype == "BYTES":
            array = np.array([_utf8(e) for e in _flatten(entry["data"])], dtype=np.object_)
        else:
            array = np.asarray(entry["data"], dtype=dtype).ravel()
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidArgument(f"input '{name}': data does not fit {datatype}: {exc}") from exc
    if array.size != count:
        raise InvalidArgument(f"input '{name}': {array.size} elements in data, shape {shape} needs {count}")
    return tensor, to_raw(array), offset


def _flatten(data: Any) -> list[Any]:
    if isinstance(data, list):
        return [e for item in data for e in _flatten(item)]
    return [data]


def _utf8(element: Any) -> bytes:
    if not isinstance(element, str):
        raise TypeError(f"BYTES data element {element!r} is not a string")
    return element.encode()


def _set_parameters(target: Any, parameters: dict[str, Any]) -> None:
    for key, value in parameters.items():
        if key in _RESERVED_PARAMETERS:
            continue
        if isinstance(value, bool):
            target[key].bool_param = value
        elif isinstance(value, int):
            target[key].int64_param = value
        elif isinstance(value, float):
            target[key].double_param = value
        else:
            target[key].string_param = str(value)


def from_infer_response(response: pb.ModelInferResponse, binary: frozenset[str] | bool) -> tuple[bytes, list[bytes]]:
    """The JSON header and the binary blobs (in output order) of a REST answer."""
    outputs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for output, raw in zip(response.outputs, response.raw_output_contents, strict=True):
        entry: dict[str, Any] = {"name": output.name, "datatype": output.datatype, "shape": list(output.shape)}
        if binary is True or (binary and output.name in binary):
            entry["parameters"] = {BINARY_SIZE: len(raw)}
            blobs.append(raw)
        else:
            entry["data"] = _json_data(output.datatype, raw)
        outputs.append(entry)
    document: dict[str, Any] = {
        "model_name": response.model_name,
        "model_version": response.model_version,
        "outputs": outputs,
    }
    if response.id:
        document["id"] = response.id
    if response.parameters:
        document["parameters"] = {
            k: getattr(v, v.WhichOneof("parameter_choice")) for k, v in response.parameters.items()
        }
    return json.dumps(document).encode(), blobs


def _json_data(datatype: str, raw: bytes) -> list[Any]:
    if datatype == "BYTES":
        return [e.decode(errors="replace") for e in split_bytes_elements(raw)]
    return np.frombuffer(raw, dtype=DTYPES[datatype]).tolist()  # type: ignore[no-any-return]
