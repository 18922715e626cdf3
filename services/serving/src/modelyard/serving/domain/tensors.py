"""Tensors as the data plane holds them: numpy arrays and the V2 (Open Inference Protocol) datatypes, with the raw
little-endian layout both transports carry (BYTES elements each prefixed with a 4-byte little-endian length)."""

from __future__ import annotations

import struct

import numpy as np
import numpy.typing as npt

from modelyard.datatypes import NUMERIC_DTYPES

Array = npt.NDArray[np.generic]

DTYPES: dict[str, np.dtype[np.generic]] = {**NUMERIC_DTYPES, "BYTES": np.dtype(np.object_)}

_DATATYPE_OF: dict[np.dtype[np.generic], str] = {dtype: name for name, dtype in DTYPES.items()}
_LENGTH = struct.Struct("<I")


def datatype_of(array: Array) -> str:
    """The V2 datatype of a numpy array (str and bytes arrays are BYTES)."""
    datatype = _DATATYPE_OF.get(array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype)
    if datatype is not None:
        return datatype
    if array.dtype.kind in "OSU":
        return "BYTES"
    raise ValueError(f"no V2 datatype for numpy dtype {array.dtype}")


def encode_bytes_elements(array: Array) -> bytes:
    """BYTES raw layout: each element as its 4-byte little-endian length, then its bytes (str as UTF-8)."""
    parts: list[bytes] = []
    for element in array.ravel().tolist():
        data = element_bytes(element)
        parts.append(_LENGTH.pack(len(data)))
        parts.append(data)
    return b"".join(parts)


def element_bytes(element: object) -> bytes:
    if isinstance(element, str):
        return element.encode()
    if isinstance(element, bytes):
        return element
    raise ValueError(f"BYTES element of type {type(element).__name__} is neither str nor bytes")


def split_bytes_elements(raw: bytes) -> list[bytes]:
    """The elements of BYTES raw content; ValueError when the length prefixes do not add up."""
    elements: list[bytes] = []
    offset, end = 0, len(raw)
    while offset < end:
        if offset + 4 > end:
            raise ValueError("raw BYTES content ends inside an element's length prefix")
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + length > end:
            raise ValueError(f"raw BYTES element {len(elements)} runs past the content")
        elements.append(raw[offset : offset + length])
        offset += length
    return elements


def to_raw(array: Array) -> bytes:
    if array.dtype.kind in "OSU":
        return encode_bytes_elements(array)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
