"""`modelyard trace ID --explain`: the feature attributions of a traced prediction, asked of serving now.

Serving's `ExplanationService/Explain` is called with the inputs the monitor logged for the prediction, for the
version that answered it (its datatypes from serving's `ModelMetadata`). The explanation is computed when the trace
is asked for: it is not part of what governance signed, so it is shown, printed and exported beside the signed
trace, never inside it, and marked as not evidence.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc
import numpy as np
from google.protobuf.json_format import MessageToDict
from rich.table import Table

from modelyard.cli.connection import client_tls
from modelyard.cli.governance import _fail, out
from modelyard.contracts.inference import grpc_service_pb2 as ipb
from modelyard.contracts.inference import grpc_service_pb2_grpc as ipb_grpc
from modelyard.contracts.serving.v1 import explanation_service_pb2 as epb
from modelyard.contracts.serving.v1 import explanation_service_pb2_grpc as epb_grpc
from modelyard.serving.codec import fill_contents
from modelyard.serving.domain.tensors import DTYPES
from modelyard.tls import grpc_channel

NOT_EVIDENCE = "computed by serving when the trace was asked for; not signed by governance, not evidence"
TOP_FEATURES = 5


def explain(trace: dict[str, Any], address: str, token: str) -> dict[str, Any]:
    """The explanation of the traced prediction, as a JSON object (`signed: false`); a refusal exits with status 1."""
    model, version = trace["model_name"], str(trace["version"])
    metadata = [("authorization", f"Bearer {token}")] if token else []
    logged = ((trace.get("monitor") or {}).get("prediction") or {}).get("inputs") or []
    with grpc_channel(address, client_tls()) as channel:
        inference = ipb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
        explainer = epb_grpc.ExplanationServiceStub(channel)  # type: ignore[no-untyped-call]
        try:
            signature = inference.ModelMetadata(
                ipb.ModelMetadataRequest(name=model, version=version), metadata=metadata
            )
            request = logged_request(trace["request_id"], signature, logged)
            answer = explainer.Explain(epb.ExplainRequest(inputs=request), metadata=metadata)
        except grpc.RpcError as exc:
            _fail(f"cannot explain {model} v{version}: serving answered {exc.code().name}: {exc.details()}")
        except ValueError as exc:
            _fail(f"cannot explain {model} v{version}: {exc}")
    return {
        "signed": False,
        "note": NOT_EVIDENCE,
        "computed_at": datetime.now(UTC).isoformat(),
        "feature_values": _first_row(signature, logged),
        **MessageToDict(answer, preserving_proto_field_name=True, always_print_fields_with_no_presence=True),
    }


def logged_request(
    request_id: str, signature: ipb.ModelMetadataResponse, logged: list[dict[str, Any]]
) -> ipb.ModelInferRequest:
    """The inference request of a logged prediction: its inputs (the monitor's JSON form of them) in the model's
    datatypes. ValueError when the log does not hold them whole."""
    request = ipb.ModelInferRequest(model_name=signature.name, id=request_id)
    if signature.versions:
        request.model_version = signature.versions[0]
    for datatype, name, array in _inputs(signature, logged):
        entry = request.inputs.add(name=name, datatype=datatype, shape=array.shape)
        fill_contents(entry.contents, datatype, array)
    return request


def _inputs(signature: ipb.ModelMetadataResponse, logged: list[dict[str, Any]]) -> list[tuple[str, str, Any]]:
    """(datatype, name, array) of each input of the model, from the log."""
    by_name = {tensor.get("name"): tensor for tensor in logged}
    inputs = []
    for spec in signature.inputs:
        tensor = by_name.get(spec.name)
        if tensor is None:
            raise ValueError(f"the prediction log holds no input {spec.name!r} for this prediction")
        if tensor.get("truncated"):
            raise ValueError(f"input {spec.name!r} was cut at the prediction log's size cap; its values are not whole")
        if spec.datatype == "BYTES":
            array = np.asarray(tensor.get("strings") or [], dtype=object)
        else:
            array = np.asarray(tensor.get("values") or [], dtype=DTYPES[spec.datatype])
        inputs.append((spec.datatype, spec.name, array.reshape(_shape(spec, array.size))))
    return inputs


def _shape(spec: ipb.ModelMetadataResponse.TensorMetadata, size: int) -> list[int]:
    """The shape of `size` logged values of an input (the log keeps them flat): the model's, with its rows."""
    row = [int(dim) for dim in spec.shape[1:]]
    width = int(np.prod(row))
    if any(dim < 0 for dim in row) or size == 0 or size % width:
        raise ValueError(f"input {spec.name!r}: {size} logged values do not make rows of shape {row}")
    return [size // width, *row]


def _first_row(signature: ipb.ModelMetadataResponse, logged: list[dict[str, Any]]) -> list[str]:
    """The first row's feature values, input by input in model order (the order of the attributions)."""
    rows = [array[0].ravel().tolist() if array.ndim > 1 else [array[0]] for _, _, array in _inputs(signature, logged)]
    return [f"{v:.4g}" if isinstance(v, float) else str(v) for row in rows for v in row]


def render(explanation: dict[str, Any]) -> None:
    """The top features by |attribution| of each explained output of the prediction."""
    out.print(
        f"[bold]explanation[/bold] of {explanation['model_name']} v{explanation['model_version']} "
        f"({explanation['method']}, {explanation['background_rows']} background rows)"
    )
    out.print(f"  {explanation['note']}")
    names, values = explanation["feature_names"], explanation["feature_values"]
    for row in explanation["rows"]:
        for output in row["outputs"]:
            out.print(
                f"  {explanation['output']}[{output['index']}]: base value {output['base_value']:.4f} "
                f"-> prediction {output['prediction']:.4f}; top features:"
            )
            table = Table("feature", "value", "attribution", box=None, padding=(0, 2))
            ranked = sorted(enumerate(output["attributions"]), key=lambda item: -abs(item[1]))
            for j, attribution in ranked[:TOP_FEATURES]:
                value = values[j] if j < len(values) else ""
                table.add_row(f"  {names[j]}", value, f"{attribution:+.4f}")
            out.print(table)
