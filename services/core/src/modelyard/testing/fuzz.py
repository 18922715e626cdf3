"""Bounded, deterministic fuzzing of a running service: every gRPC method of a service descriptor (random bytes and
random valid messages built from the descriptors) and every operation of an OpenAPI document (schemathesis).

Each answer's status is counted; a test asserts that no answer is a server error (UNKNOWN / INTERNAL / 5xx), which
is what an unhandled exception or an unmapped error looks like from outside.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import schemathesis
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.core.result import Err
from schemathesis.generation.modes import GenerationMode

SERVER_ERRORS = frozenset({grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNIMPLEMENTED})
MAX_DEPTH = 3
TIMEOUT_S = 10.0


@dataclass
class FuzzReport:
    """Answers by status, and a few examples of each server error (what was sent, what came back)."""

    calls: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)

    def record(self, where: str, status: str, server_error: bool, detail: str) -> None:
        self.calls += 1
        self.statuses[status] += 1
        if server_error and len(self.server_errors) < 20:
            self.server_errors.append(f"{where}: {status}: {detail[:300]}")


def _fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )


# -- gRPC ---------------------------------------------------------------------------------------------------------

_TEXT = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", "model", "production", "sha256:" + "0" * 64, "../../etc/passwd", "a/b", "\x00"]),
    st.text(alphabet="xy", min_size=300, max_size=5000),
)
_SCALARS: dict[int, st.SearchStrategy[Any]] = {
    FieldDescriptor.TYPE_DOUBLE: st.floats(),
    FieldDescriptor.TYPE_FLOAT: st.floats(width=32),
    FieldDescriptor.TYPE_INT64: st.integers(-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: st.integers(-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: st.integers(-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: st.integers(0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: st.integers(0, 2**64 - 1),
    FieldDescriptor.TYPE_INT32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: st.integers(0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: st.integers(0, 2**32 - 1),
    FieldDescriptor.TYPE_BOOL: st.booleans(),
    FieldDescriptor.TYPE_STRING: _TEXT,
    FieldDescriptor.TYPE_BYTES: st.binary(max_size=64),
}
# Small values matter most (versions, limits, page sizes), so they are tried as often as the whole range.
_SMALL_INTS = st.integers(-3, 5)


def _value(field_descriptor: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field_descriptor.type == FieldDescriptor.TYPE_MESSAGE:
        return messages(field_descriptor.message_type, depth + 1)
    if field_descriptor.type == FieldDescriptor.TYPE_ENUM:
        return st.integers(-1, len(field_descriptor.enum_type.values) + 1)
    scalar = _SCALARS[field_descriptor.type]
    if field_descriptor.cpp_type in (FieldDescriptor.CPPTYPE_INT32, FieldDescriptor.CPPTYPE_INT64):
        return st.one_of(_SMALL_INTS, scalar)
    return scalar


@st.composite
def _message(draw: st.DrawFn, descriptor: Descriptor, depth: int) -> Message:
    message: Message = GetMessageClass(descriptor)()
    if depth > MAX_DEPTH:
        return message
    for fd in descriptor.fields:
        if not draw(st.booleans()):
            continue
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            key, value = fd.message_type.fields_by_name["key"], fd.message_type.fields_by_name["value"]
            target = getattr(message, fd.name)
            for k, v in draw(st.dictionaries(_value(key, depth), _value(value, depth), max_size=3)).items():
                if value.type == FieldDescriptor.TYPE_MESSAGE:
                    target[k].CopyFrom(v)
                else:
                    target[k] = v
        elif fd.label == FieldDescriptor.LABEL_REPEATED:
            getattr(message, fd.name).extend(draw(st.lists(_value(fd, depth), max_size=3)))
        elif fd.type == FieldDescriptor.TYPE_MESSAGE:
            getattr(message, fd.name).CopyFrom(draw(_value(fd, depth)))
        else:
            setattr(message, fd.name, draw(_value(fd, depth)))
    return message


def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Random messages of a type: every field set or not, values over each type's whole range (out-of-range
    timestamps, 64-bit numbers, unknown enum values, long strings)."""
    return _message(descriptor, depth)


def _grpc_call(channel: grpc.Channel, method: MethodDescriptor, payloads: list[bytes]) -> None:
    path = f"/{method.containing_service.full_name}/{method.name}"
    if method.client_streaming and method.server_streaming:
        list(channel.stream_stream(path)(iter(payloads), timeout=TIMEOUT_S))
    elif method.client_streaming:
        channel.stream_unary(path)(iter(payloads), timeout=TIMEOUT_S)
    elif method.server_streaming:
        list(channel.unary_stream(path)(payloads[0], timeout=TIMEOUT_S))
    else:
        channel.unary_unary(path)(payloads[0], timeout=TIMEOUT_S)


def _fuzz_method(channel: grpc.Channel, method: MethodDescriptor, examples: int, report: FuzzReport) -> None:
    where = f"{method.containing_service.name}/{method.name}"

    def call(payloads: list[bytes]) -> None:
        try:
            _grpc_call(channel, method, payloads)
            report.record(where, "OK", False, "")
        except grpc.RpcError as exc:
            code: grpc.StatusCode = exc.code()
            report.record(where, code.name, code in SERVER_ERRORS, exc.details() or "")

    most = 3 if method.client_streaming else 1

    @_fuzz_settings(examples)
    @given(st.lists(messages(method.input_type), min_size=1, max_size=most))
    def valid(found: list[Message]) -> None:
        call([message.SerializeToString() for message in found])

    @_fuzz_settings(examples)
    @given(st.lists(st.binary(min_size=1, max_size=64), min_size=1, max_size=most))
    def garbage(payloads: list[bytes]) -> None:
        call(payloads)

    valid()
    garbage()


def fuzz_grpc(address: str, service: ServiceDescriptor, examples: int) -> FuzzReport:
    """Call every method of `service` with `examples` random valid messages and as many random byte strings."""
    report = FuzzReport()
    with grpc.insecure_channel(address) as channel:
        for method in service.methods:
            _fuzz_method(channel, method, examples, report)
    return report


# -- REST ---------------------------------------------------------------------------------------------------------


def operations(base_url: str) -> Iterator[Any]:
    """Every operation of the OpenAPI document the service at `base_url` publishes."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # a document schemathesis cannot read is a failure, not an operation skipped
        yield result.ok()


def _fuzz_operation(base_url: str, operation: Any, mode: GenerationMode, examples: int, report: FuzzReport) -> None:
    where = f"{operation.method.upper()} {operation.path}"

    @_fuzz_settings(examples)
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = case.call(base_url=base_url, timeout=TIMEOUT_S)
        status = response.status_code
        report.record(where, str(status), status >= 500, f"{case.as_curl_command()} -> {response.text}")

    # An operation without parameters has no case that violates its schema.
    with contextlib.suppress(Unsatisfiable):
        run()


def fuzz_rest(base_url: str, examples: int) -> FuzzReport:
    """Call every operation of the service's OpenAPI document with `examples` cases that fit the schema and as
    many that do not (schemathesis), counting the HTTP statuses."""
    report = FuzzReport()
    for operation in operations(base_url):
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz_operation(base_url, operation, mode, examples, report)
    return report
