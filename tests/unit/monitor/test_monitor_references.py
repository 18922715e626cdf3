"""Reference data from local files: CSV and Parquet, column naming, ground truth, errors."""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelyard.monitor.adapters.references import LocalReferenceSource
from modelyard.monitor.domain.errors import ReferenceDataError, ReferenceNotFound
from modelyard.monitor.domain.profile import Kind, Role, build_profile

pytestmark = pytest.mark.unit


def test_csv_columns_become_features_outputs_and_truth(tmp_path: Path) -> None:
    (tmp_path / "credit").mkdir()
    rows = ["x[0],x[1],segment,output:label,truth:label"]
    rows += [f"{i / 10},{(i * 7) % 5},{'ab'[i % 2]},{i % 2},{(i // 3) % 2}" for i in range(60)]
    rows.append(",,,1,1")  # a row with missing features
    (tmp_path / "credit" / "2.csv").write_text("\n".join(rows) + "\n")
    data = LocalReferenceSource(tmp_path).load("credit", 2)
    profile = build_profile("credit", 2, data.columns, source=data.source)
    by_name = {f.name: f for f in profile.features}
    assert set(by_name) == {"x[0]", "x[1]", "segment", "output:label"}  # truth is not a feature
    assert (by_name["x[1]"].tensor, by_name["x[1]"].index, by_name["x[1]"].kind) == ("x", 1, Kind.NUMERIC)
    assert by_name["output:label"].role is Role.OUTPUT and by_name["segment"].kind is Kind.CATEGORICAL
    assert profile.numeric["x[0]"].null_rate == pytest.approx(1 / 61)
    assert profile.categorical["segment"].null_rate == pytest.approx(1 / 61)
    assert profile.baseline_error is not None and 0 < profile.baseline_error[0] < 1
    assert data.source.startswith("file:")


def test_parquet_is_read_and_missing_or_broken_files_say_so(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    pq.write_table(pa.table({"x": np.arange(10.0)}), tmp_path / "m" / "1.parquet")
    assert LocalReferenceSource(tmp_path).load("m", 1).columns["x"].tolist() == list(np.arange(10.0))
    with pytest.raises(ReferenceNotFound):
        LocalReferenceSource(tmp_path).load("m", 2)
    (tmp_path / "m" / "3.parquet").write_bytes(b"not parquet")
    with pytest.raises(ReferenceDataError):
        LocalReferenceSource(tmp_path).load("m", 3)


def test_registered_columns_are_renamed_with_the_signatures_feature_names() -> None:
    from modelyard.monitor.adapters.registry_references import reference_columns

    values = np.arange(3.0)
    columns = {
        "age": values,
        "income": values + 1,
        "city": np.array(["a", "b", "c"]),
        "target": values,  # the label column: no input of the model
        "output:label": values,
        "truth:label": values,
        "z[1]": values,
    }
    inputs = {"x": ["age", "income"], "place": ["city"], "z": []}
    renamed = reference_columns(columns, inputs)
    assert sorted(renamed) == ["output:label", "place", "truth:label", "x[0]", "x[1]", "z[1]"]
    assert renamed["x[1]"] is columns["income"] and renamed["place"] is columns["city"]
    with pytest.raises(ReferenceDataError, match="several columns"):
        reference_columns({"age": values, "x[0]": values}, {"x": ["age", "income"]})
    with pytest.raises(ReferenceDataError, match="no reference column"):
        reference_columns({"target": values}, {"x": ["age"]})


def test_parquet_nulls_become_nan_and_empty_text(tmp_path: Path) -> None:
    """Numbers are read from Arrow's buffers (validity bitmap included), over chunk and slice offsets."""
    (tmp_path / "m").mkdir()
    ints = pa.chunked_array([pa.array([1, None, 3]), pa.array([None, 5, 6, 7, 8, None, 10])])
    table = pa.table(
        {
            "i": ints,
            "f": pa.chunked_array([pa.array([1.5, None, float("nan")]), pa.array([2.0] * 7)]),
            "b": pa.chunked_array([pa.array([True, None, False] * 3 + [True])]),
            "s": pa.chunked_array([pa.array(["a", None, "c"] * 3 + [None])]),
        }
    )
    pq.write_table(table, tmp_path / "m" / "1.parquet", row_group_size=4)  # several row groups: several chunks
    columns = LocalReferenceSource(tmp_path).load("m", 1).columns
    np.testing.assert_array_equal(columns["i"], [1, np.nan, 3, np.nan, 5, 6, 7, 8, np.nan, 10])
    np.testing.assert_array_equal(columns["f"], [1.5, np.nan, np.nan] + [2.0] * 7)
    np.testing.assert_array_equal(columns["b"], [1, np.nan, 0] * 3 + [1])
    assert columns["s"].tolist() == ["a", "", "c"] * 3 + [""]
    assert columns["i"].dtype == np.float64 and columns["s"].dtype.kind == "U"
