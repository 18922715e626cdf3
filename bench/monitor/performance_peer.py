"""Runs inside NannyML's virtualenv: `python performance_peer.py DATA.npz LABEL_CHUNK PREDICTION_CHUNK`; prints one
JSON line.

DATA.npz has `reference` and `stream`, each rows x 3 (positive-class score, predicted class, truth). NannyML runs
with its defaults: PerformanceCalculator (realised accuracy, chunks of LABEL_CHUNK labelled rows, alert thresholds
from the reference's chunks) and CBPE (estimated accuracy, chunks of PREDICTION_CHUNK rows, truth withheld).
"""

from __future__ import annotations

import json
import sys

import numpy as np


def frame(rows: np.ndarray, truth: bool):  # type: ignore[no-untyped-def]  # pandas is the peer's, not ours
    import pandas as pd

    columns = {"y_pred_proba": rows[:, 0], "y_pred": rows[:, 1].astype(int)}
    if truth:
        columns["y_true"] = rows[:, 2].astype(int)
    return pd.DataFrame(columns)


def main() -> None:
    import nannyml as nml

    path, label_chunk, prediction_chunk = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with np.load(path) as data:
        reference, stream = data["reference"], data["stream"]
    common = {"y_pred_proba": "y_pred_proba", "y_pred": "y_pred", "y_true": "y_true"}
    realised = nml.PerformanceCalculator(
        **common, problem_type="classification_binary", metrics=["accuracy"], chunk_size=label_chunk
    )
    realised.fit(frame(reference, truth=True))
    done = realised.calculate(frame(stream, truth=True)).filter(period="analysis").to_df()
    estimator = nml.CBPE(
        **common, problem_type="classification_binary", metrics=["accuracy"], chunk_size=prediction_chunk
    )
    estimator.fit(frame(reference, truth=True))
    estimated = estimator.estimate(frame(stream, truth=False)).filter(period="analysis").to_df()
    print(
        json.dumps(
            {
                "realised_alerts": [bool(a) for a in done[("accuracy", "alert")]],
                "estimated": [float(v) for v in estimated[("accuracy", "value")]],
                "estimated_alerts": [bool(a) for a in estimated[("accuracy", "alert")]],
                "version": nml.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
