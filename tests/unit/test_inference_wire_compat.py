"""protos/inference/grpc_service.proto must stay wire compatible with NVIDIA Triton, so tritonclient works.

Our generated module and tritonclient's both register `inference.*` symbols in protobuf's default descriptor
pool, which rejects duplicates, so the two cannot be imported into one process. Triton's schema is therefore
dumped from tritonclient's own generated modules in a subprocess and loaded into a private pool here; the
Triton message classes used below are built from that exact descriptor.
"""

from __future__ import annotations

import struct
import subprocess
import sys
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

from modelyard.contracts.inference import grpc_service_pb2 as ours

_DUMP_TRITON_SCHEMA = """
import sys
from google.protobuf import descriptor_pb2
from tritonclient.grpc import model_config_pb2, service_pb2
files = descriptor_pb2.FileDescriptorSet()
for module in (model_config_pb2, service_pb2):  # dependency first
    module.DESCRIPTOR.CopyToProto(files.file.add())
sys.stdout.buffer.write(files.SerializeToString())
"""


def _messages(file: descriptor_pb2.FileDescriptorProto) -> dict[str, descriptor_pb2.DescriptorProto]:
    """Every message in the file, nested ones (map entries included) too, by full name."""
    found: dict[str, descriptor_pb2.DescriptorProto] = {}

    def walk(messages: Any, prefix: str) -> None:
        for message in messages:
            found[prefix + message.name] = message
            walk(message.nested_type, f"{prefix}{message.name}.")

    walk(file.message_type, f"{file.package}.")
    return found


def _signature(
    message: descriptor_pb2.DescriptorProto, field: descriptor_pb2.FieldDescriptorProto
) -> tuple[object, ...]:
    oneof = message.oneof_decl[field.oneof_index].name if field.HasField("oneof_index") else None
    return field.number, field.type, field.label, field.type_name, oneof


OURS = descriptor_pb2.FileDescriptorProto.FromString(ours.DESCRIPTOR.serialized_pb)


@pytest.fixture(scope="module")
def triton_pool() -> descriptor_pool.DescriptorPool:
    dump = subprocess.run(
        [sys.executable, "-c", _DUMP_TRITON_SCHEMA], check=True, capture_output=True, timeout=60
    ).stdout
    pool = descriptor_pool.DescriptorPool()
    for file in descriptor_pb2.FileDescriptorSet.FromString(dump).file:
        pool.AddSerializedFile(file.SerializeToString())
    return pool


@pytest.fixture(scope="module")
def triton(triton_pool: descriptor_pool.DescriptorPool) -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto()
    triton_pool.FindFileByName("grpc_service.proto").CopyToProto(file)
    return file


def _triton_class(pool: descriptor_pool.DescriptorPool, name: str) -> Any:
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"inference.{name}"))


@pytest.mark.unit
def test_same_syntax_and_package(triton: descriptor_pb2.FileDescriptorProto) -> None:
    assert (OURS.syntax, OURS.package) == (triton.syntax, triton.package) == ("proto3", "inference")


@pytest.mark.unit
@pytest.mark.parametrize("name", sorted(_messages(OURS)))
def test_message_fields_match_triton(name: str, triton: descriptor_pb2.FileDescriptorProto) -> None:
    theirs = _messages(triton).get(name)
    assert theirs is not None, f"{name} does not exist in Triton's grpc_service.proto"
    mine = _messages(OURS)[name]
    assert mine.options.map_entry == theirs.options.map_entry
    their_fields = {field.name: field for field in theirs.field}
    for field in mine.field:
        assert field.name in their_fields, f"{name}.{field.name} does not exist in Triton"
        assert _signature(mine, field) == _signature(theirs, their_fields[field.name]), f"{name}.{field.name}"


@pytest.mark.unit
def test_rpcs_match_triton(triton: descriptor_pb2.FileDescriptorProto) -> None:
    (service,) = OURS.service
    assert service.name == "GRPCInferenceService"
    their_service = next(s for s in triton.service if s.name == service.name)
    their_methods = {method.name: method for method in their_service.method}

    def shape(method: descriptor_pb2.MethodDescriptorProto) -> tuple[object, ...]:
        return method.input_type, method.output_type, method.client_streaming, method.server_streaming

    for method in service.method:
        assert method.name in their_methods, f"rpc {method.name} does not exist in Triton"
        assert shape(method) == shape(their_methods[method.name]), f"rpc {method.name}"


@pytest.mark.unit
def test_triton_infer_request_round_trips_through_ours(triton_pool: descriptor_pool.DescriptorPool) -> None:
    request_class = _triton_class(triton_pool, "ModelInferRequest")
    sent = request_class(model_name="iris", model_version="3", id="req-1")
    sent.parameters["priority"].int64_param = 2
    sent.parameters["sequence_start"].bool_param = True
    sent.parameters["tag"].string_param = "canary"
    features = sent.inputs.add(name="features", datatype="FP32", shape=[1, 4])
    features.parameters["binary_data_size"].int64_param = 16
    sent.inputs.add(name="label", datatype="BYTES", shape=[1])
    sent.outputs.add(name="probabilities").parameters["classification"].int64_param = 3
    sent.raw_input_contents.extend([struct.pack("<4f", 5.1, 3.5, 1.4, 0.2), struct.pack("<I", 6) + b"setosa"])
    wire = sent.SerializeToString(deterministic=True)

    got = ours.ModelInferRequest.FromString(wire)

    assert (got.model_name, got.model_version, got.id) == ("iris", "3", "req-1")
    assert {key: value.WhichOneof("parameter_choice") for key, value in got.parameters.items()} == {
        "priority": "int64_param",
        "sequence_start": "bool_param",
        "tag": "string_param",
    }
    assert [(t.name, t.datatype, list(t.shape)) for t in got.inputs] == [
        ("features", "FP32", [1, 4]),
        ("label", "BYTES", [1]),
    ]
    assert got.inputs[0].parameters["binary_data_size"].int64_param == 16
    assert got.outputs[0].parameters["classification"].int64_param == 3
    assert list(got.raw_input_contents) == list(sent.raw_input_contents)
    # Same field names and values throughout (text format names every field; unknown fields are not printed).
    assert text_format.MessageToString(got) == text_format.MessageToString(sent)

    back = got.SerializeToString(deterministic=True)
    assert back == wire
    assert request_class.FromString(back) == sent


@pytest.mark.unit
def test_our_infer_response_parses_with_triton(triton_pool: descriptor_pool.DescriptorPool) -> None:
    sent = ours.ModelInferResponse(model_name="iris", model_version="3", id="req-1")
    sent.parameters["sequence_end"].bool_param = True
    probabilities = sent.outputs.add(name="probabilities", datatype="FP32", shape=[1, 3])
    probabilities.contents.fp32_contents.extend([0.25, 0.5, 0.25])
    sent.outputs.add(name="label", datatype="INT64", shape=[1]).contents.int64_contents.append(1)

    got = _triton_class(triton_pool, "ModelInferResponse").FromString(sent.SerializeToString())

    assert text_format.MessageToString(got) == text_format.MessageToString(sent)
    assert list(got.outputs[0].contents.fp32_contents) == [0.25, 0.5, 0.25]
