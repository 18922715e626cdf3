"""The process `modelyard retrain` runs a training script in, and what the script is given.

A training script defines one function (the entry point), in a file of its own:

    from modelyard.cli.retrain_runner import Dataset

    def train(datasets: list[Dataset], params: dict[str, str]) -> bytes | tuple[bytes, dict[str, float]]:
        ...  # fit on the datasets; return the ONNX model (serialized ModelProto), or it and metrics for lineage

`datasets` are the parent version's reference dataset (`name == "reference"`) and the training part of the newest
retraining snapshot of live, labelled traffic (`name == "snapshot"`), in that order; `params` are the
`--param key=value` pairs, as strings. `Dataset.arrays()` gives the feature matrix (float32, in the parent
version's feature order) and the labels; `Dataset.table()` the whole file as a pyarrow Table (the snapshot also has
`prediction`, `model_version` and `event_time` columns after the label).

Run as `python -m modelyard.cli.retrain_runner SCRIPT SPEC OUTPUT` (SPEC: JSON naming the datasets and params): a
process of its own, so that a script that crashes, leaks or exits takes nothing of the CLI with it; its output is
what `modelyard retrain` shows when it fails. Exit status 0 means OUTPUT holds the bytes `train` returned (and
OUTPUT.metrics.json the metrics, if it returned any).
"""

from __future__ import annotations

import json
import runpy
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

ENTRY_POINT = "train"
METRICS_SUFFIX = ".metrics.json"


@dataclass(frozen=True)
class Dataset:
    name: str  # "reference" or "snapshot"
    path: Path  # a CSV (or Parquet) file
    digest: str  # of the registered artifact it came from
    label_column: str
    feature_names: tuple[str, ...]  # the parent version's, in its input's order

    def table(self) -> pa.Table:
        import pyarrow.csv as pa_csv
        import pyarrow.parquet as pq

        return pq.read_table(self.path) if self.path.suffix == ".parquet" else pa_csv.read_csv(self.path)

    def arrays(self) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """(features, labels): the feature columns as a float32 matrix, the label column as it is."""
        import numpy as np

        table = self.table()
        x = np.column_stack([table.column(name).to_numpy().astype(np.float32) for name in self.feature_names])
        return x, table.column(self.label_column).to_numpy()


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m modelyard.cli.retrain_runner SCRIPT SPEC OUTPUT", file=sys.stderr)
        return 2
    script, spec_file, output = argv
    spec = json.loads(Path(spec_file).read_text())
    datasets = [
        Dataset(d["name"], Path(d["path"]), d["digest"], d["label_column"], tuple(d["feature_names"]))
        for d in spec["datasets"]
    ]
    entry = runpy.run_path(script, run_name="modelyard_training_script").get(ENTRY_POINT)
    if not callable(entry):
        print(f"{script} defines no function {ENTRY_POINT}(datasets, params)", file=sys.stderr)
        return 2
    result = entry(datasets, dict(spec["params"]))
    model, metrics = result if isinstance(result, tuple) and len(result) == 2 else (result, {})
    if not isinstance(model, bytes | bytearray):
        print(f"{ENTRY_POINT}() returned {type(model).__name__}, not the ONNX model's bytes", file=sys.stderr)
        return 2
    try:
        numbers = {str(name): float(value) for name, value in dict(metrics).items()}
    except (TypeError, ValueError):
        print(f"{ENTRY_POINT}()'s metrics are not a mapping of names to numbers", file=sys.stderr)
        return 2
    Path(output).write_bytes(model)
    Path(output + METRICS_SUFFIX).write_text(json.dumps(numbers))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
