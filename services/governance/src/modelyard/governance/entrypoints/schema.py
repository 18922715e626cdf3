"""JSON Schemas of request bodies, derived from the protobuf messages the REST routes parse (protobuf's JSON
mapping): the OpenAPI document describes each POST body from the same descriptor the gRPC method uses, so the two
cannot drift apart and no hand-written body model repeats the proto."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

_INT32 = {"type": "integer", "format": "int32", "minimum": -(2**31), "maximum": 2**31 - 1}
_UINT32 = {"type": "integer", "format": "int32", "minimum": 0, "maximum": 2**32 - 1}
# protobuf's JSON mapping writes 64-bit integers as strings and reads both forms; a schema of integers is what a
# client most likely sends. No bounds: FastAPI's OpenAPI model keeps them as floats, which cannot say 2**63 - 1.
_INT64 = {"type": "integer", "format": "int64"}
_UINT64 = {"type": "integer", "format": "int64", "minimum": 0}
_SCALARS: dict[int, dict[str, Any]] = {
    FieldDescriptor.TYPE_DOUBLE: {"type": "number"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number"},
    FieldDescriptor.TYPE_INT32: _INT32,
    FieldDescriptor.TYPE_SINT32: _INT32,
    FieldDescriptor.TYPE_SFIXED32: _INT32,
    FieldDescriptor.TYPE_UINT32: _UINT32,
    FieldDescriptor.TYPE_FIXED32: _UINT32,
    FieldDescriptor.TYPE_INT64: _INT64,
    FieldDescriptor.TYPE_SINT64: _INT64,
    FieldDescriptor.TYPE_SFIXED64: _INT64,
    FieldDescriptor.TYPE_UINT64: _UINT64,
    FieldDescriptor.TYPE_FIXED64: _UINT64,
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "format": "byte"},
}
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?\d+(\.\d+)?s$"},
}


def message_schema(descriptor: Descriptor, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """An object with the message's fields (proto names, all optional, as in proto3), none other; `exclude`
    leaves out fields that come from elsewhere (path parameters)."""
    excluded = set(exclude)
    properties = {f.name: _field_schema(f) for f in descriptor.fields if f.name not in excluded}
    return {"type": "object", "title": descriptor.name, "properties": properties, "additionalProperties": False}


def _field_schema(field: FieldDescriptor) -> dict[str, Any]:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        value = field.message_type.fields_by_name["value"]
        return {"type": "object", "additionalProperties": _single_schema(value)}
    single = _single_schema(field)
    return {"type": "array", "items": single} if field.label == FieldDescriptor.LABEL_REPEATED else single


def _single_schema(field: FieldDescriptor) -> dict[str, Any]:
    if field.enum_type is not None:
        return {"type": "string", "enum": [value.name for value in field.enum_type.values]}
    if field.message_type is not None:
        return dict(_WELL_KNOWN.get(field.message_type.full_name) or message_schema(field.message_type))
    return dict(_SCALARS[field.type])
