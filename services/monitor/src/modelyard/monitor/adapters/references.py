"""Reference datasets from local files: `<directory>/<model>/<version>.parquet` (or `.csv`).

Column names say where a feature lives in a prediction record: `x[3]` is element 3 of input tensor `x`, a plain
name is a one-value tensor, and the prefix `output:` marks a model output (`output:probabilities[1]`). Numeric
columns are profiled as numeric features, any other type as categorical.

pyarrow is imported by the first reference read, not by the monitor's start: the prediction path never needs it
(~40 MB resident), and a restarted monitor takes its profiles from its store. Parquet is read with `ParquetFile`,
not `read_table`, whose dataset layer imports pandas (another ~50 MB) for nothing here.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

from modelyard.monitor.domain.errors import ReferenceDataError, ReferenceNotFound
from modelyard.monitor.domain.ports import ReferenceData

if TYPE_CHECKING:
    import pyarrow as pa

Columns = dict[str, npt.NDArray[np.generic]]
Format = Literal["parquet", "csv"]
FORMATS: tuple[Format, ...] = ("parquet", "csv")


class LocalReferenceSource:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def load(self, model_name: str, model_version: int) -> ReferenceData:
        for suffix in FORMATS:
            path = self.directory / model_name / f"{model_version}.{suffix}"
            if path.is_file():
                columns = read_columns(path, suffix, f"cannot read reference data {path}")
                return ReferenceData(columns=columns, source=f"file:{path}")
        raise ReferenceNotFound(f"no reference data for {model_name}/{model_version} under {self.directory}")

    def close(self) -> None:
        """Nothing to release: files are opened per load."""


def read_columns(file: Path | IO[bytes], kind: Format, failure: str) -> Columns:
    """A Parquet or CSV table's columns (`table_columns`); ReferenceDataError starting with `failure` if unreadable."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(file).read() if kind == "parquet" else pa_csv.read_csv(file)
    except (pa.ArrowException, OSError) as exc:
        raise ReferenceDataError(f"{failure}: {exc}") from exc
    return table_columns(table)


def table_columns(table: pa.Table) -> Columns:
    """Arrow columns as numpy: numbers as float64 (nulls become NaN), everything else as str (nulls become "")."""
    import pyarrow as pa

    columns: Columns = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_boolean(column.type):
            columns[name] = _float64(column.cast(pa.float64()).combine_chunks())
        else:
            texts = column.cast(pa.string()).to_pylist()
            columns[name] = np.asarray(["" if v is None else v for v in texts], dtype=str)
    return columns


def _float64(array: pa.Array) -> npt.NDArray[np.float64]:
    """A float64 Arrow array as numpy, nulls as NaN, read from its buffers: pyarrow's `to_numpy` (and `fill_null`
    with a Python scalar) import pandas, ~50 MB the monitor has no other use for."""
    n, offset = len(array), array.offset
    validity, data = array.buffers()
    if n == 0 or data is None:
        return np.empty(0, dtype=np.float64)
    values = np.frombuffer(data, dtype=np.float64, count=offset + n)[offset:].copy()
    if validity is not None and array.null_count:
        valid = np.unpackbits(np.frombuffer(validity, dtype=np.uint8), count=offset + n, bitorder="little")[offset:]
        values[valid == 0] = np.nan
    return values
