"""Reference datasets from local files: `<directory>/<model>/<version>.parquet` (or `.csv`).

Column names say where a feature lives in a prediction record: `x[3]` is element 3 of input tensor `x`, a plain
name is a one-value tensor, and the prefix `output:` marks a model output (`output:probabilities[1]`). Numeric
columns are profiled as numeric features, any other type as categorical.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from modelyard.monitor.domain.errors import ReferenceDataError, ReferenceNotFound
from modelyard.monitor.domain.ports import ReferenceData


class LocalReferenceSource:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def load(self, model_name: str, model_version: int) -> ReferenceData:
        for suffix, read in ((".parquet", pq.read_table), (".csv", pa_csv.read_csv)):
            path = self.directory / model_name / f"{model_version}{suffix}"
            if path.is_file():
                try:
                    table = read(path)
                except (pa.ArrowException, OSError) as exc:
                    raise ReferenceDataError(f"cannot read reference data {path}: {exc}") from exc
                return ReferenceData(columns=table_columns(table), source=f"file:{path}")
        raise ReferenceNotFound(f"no reference data for {model_name}/{model_version} under {self.directory}")

    def close(self) -> None:
        """Nothing to release: files are opened per load."""


def table_columns(table: pa.Table) -> dict[str, npt.NDArray[np.generic]]:
    """Arrow columns as numpy: numbers as float64 (nulls become NaN), everything else as str (nulls become "")."""
    columns: dict[str, npt.NDArray[np.generic]] = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_boolean(column.type):
            columns[name] = column.cast(pa.float64()).fill_null(np.nan).to_numpy()
        else:
            columns[name] = np.asarray(column.cast(pa.string()).fill_null("").to_pylist(), dtype=str)
    return columns
