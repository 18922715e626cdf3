"""Pure registry logic: validation, feature names, pagination tokens, error mapping, access rules."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import pytest

from modelyard.auth import (
    PermissionDenied,
    Unauthenticated,
)
from modelyard.registry.domain import errors
from modelyard.registry.domain.model import (
    DatasetSchema,
    MediaType,
    Signature,
    TensorSpec,
    derive_feature_names,
    validate_alias,
    validate_digest,
    validate_model_name,
)
from modelyard.registry.domain.pagination import decode_token, encode_token, page_size
from modelyard.registry.entrypoints.errors import ERRORS
from modelyard.sql.engine import UTCDateTime

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name", ["iris", "fraud-detector.v2", "A_1", "x" * 128])
def test_valid_model_names(name: str) -> None:
    assert validate_model_name(name) == name


@pytest.mark.parametrize("alias", ["Production", "latest", "1st", "", "a b"])
def test_invalid_aliases(alias: str) -> None:
    with pytest.raises(errors.InvalidArgument):
        validate_alias(alias)


@pytest.mark.parametrize("digest", ["sha256:" + "A" * 64, "md5:" + "a" * 32, "sha256:" + "a" * 63, ""])
def test_invalid_digests(digest: str) -> None:
    with pytest.raises(errors.InvalidArgument):
        validate_digest(digest)


def test_media_type_kind_and_parse() -> None:
    assert MediaType.parse("text/csv").kind.value == "dataset"
    assert MediaType.parse("application/x-onnx-bundle+tar").kind.value == "onnx_model"
    with pytest.raises(errors.InvalidArgument, match="unknown media type"):
        MediaType.parse("application/zip")


SIGNATURE = Signature(
    inputs=(TensorSpec("X", "FLOAT", ("N", 3)),),
    outputs=(TensorSpec("Y", "FLOAT", ("N", 1)),),
    opsets={"ai.onnx": 17},
    ir_version=8,
    producer_name="test",
    producer_version="1",
)


def test_feature_names_from_the_reference_dataset_minus_the_label() -> None:
    dataset = DatasetSchema(columns=("a", "b", "c", "target"), rows=10)
    assert derive_feature_names(SIGNATURE, {}, dataset, "target") == {"X": ("a", "b", "c")}
    assert derive_feature_names(SIGNATURE, {"X": ("p", "q", "r")}, dataset, "target") == {"X": ("p", "q", "r")}


def test_the_monitors_output_and_truth_columns_are_not_feature_names() -> None:
    # A reference documented for the monitor: three features, the model's answers on them and the ground truth.
    columns = ("a", "b", "c", "output:label", "output:probabilities[1]", "truth:label", "target")
    dataset = DatasetSchema(columns=columns, rows=10)
    assert derive_feature_names(SIGNATURE, {}, dataset, "target") == {"X": ("a", "b", "c")}


@pytest.mark.parametrize(
    ("given", "match"),
    [
        ({"X": ("a", "b")}, "3 columns"),
        ({"Z": ("a", "b", "c")}, "unknown input"),
        ({"X": ("a", "a", "b")}, "duplicate"),
    ],
)
def test_feature_names_are_checked(given: dict[str, tuple[str, ...]], match: str) -> None:
    with pytest.raises(errors.InvalidArgument, match=match):
        derive_feature_names(SIGNATURE, given, None, "")


def test_page_tokens_round_trip_and_reject_garbage() -> None:
    assert decode_token(encode_token("m", 3), str, int) == ["m", 3]
    assert decode_token("", str) is None
    for bad in ("!!!", encode_token(3), encode_token("a", "b")):
        with pytest.raises(errors.InvalidArgument, match="page token"):
            decode_token(bad, str, int)
    assert page_size(0) == 100 and page_size(5000) == 1000
    with pytest.raises(errors.InvalidArgument):
        page_size(-1)


@pytest.mark.parametrize(
    ("error", "code", "status"),
    [
        (errors.InvalidArgument("x"), grpc.StatusCode.INVALID_ARGUMENT, 400),
        (errors.NotFound("x"), grpc.StatusCode.NOT_FOUND, 404),
        (errors.AlreadyExists("x"), grpc.StatusCode.ALREADY_EXISTS, 409),
        (errors.DataLoss("x"), grpc.StatusCode.DATA_LOSS, 422),
        (errors.ResourceExhausted("x"), grpc.StatusCode.RESOURCE_EXHAUSTED, 413),
        (Unauthenticated("x"), grpc.StatusCode.UNAUTHENTICATED, 401),
        (PermissionDenied("x"), grpc.StatusCode.PERMISSION_DENIED, 403),
        (RuntimeError("x"), grpc.StatusCode.INTERNAL, 500),
    ],
)
def test_one_error_mapping_for_both_transports(error: Exception, code: grpc.StatusCode, status: int) -> None:
    assert ERRORS.of(error) == (code, status)


def test_utc_timestamps_survive_sqlite() -> None:
    stored = UTCDateTime().process_bind_param(datetime(2025, 1, 1, 12, tzinfo=UTC), None)  # type: ignore[arg-type]
    assert stored is not None and stored.tzinfo is UTC
    read = UTCDateTime().process_result_value(datetime(2025, 1, 1, 12), None)  # type: ignore[arg-type]
    assert read == datetime(2025, 1, 1, 12, tzinfo=UTC)
