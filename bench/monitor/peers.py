"""Runs inside a peer's own virtualenv: `python peers.py PEER DATA.npz MAX_WINDOWS MAX_SECONDS`; prints one JSON line.

DATA.npz has `reference` (rows x features) and `windows` (windows x rows x features); at most MAX_WINDOWS are
used, and a peer that checks window by window also stops after MAX_SECONDS (Evidently takes tens of seconds per
report against a 50k-row reference on this shared machine). Each peer runs its default check:

- evidently: DataDriftPreset per window (its own method per column; for numeric columns of a large reference,
  normed Wasserstein > 0.1; dataset drift when half the columns drift);
- alibi: KSDrift per window; it returns every window's per-feature p-values, so the caller can apply Alibi's own
  Bonferroni rule (drift when min p < p_val / features) at the default p_val=0.05 or at a calibrated one;
- nannyml: UnivariateDriftCalculator with its default methods and thresholds, one chunk per window.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np


def _bounded(windows: np.ndarray, seconds: float) -> Iterator[np.ndarray]:
    """The windows, stopping early once `seconds` have passed (at least one is always yielded)."""
    deadline = time.perf_counter() + seconds
    for window in windows:
        yield window
        if time.perf_counter() > deadline:
            return


def evidently(reference: np.ndarray, windows: np.ndarray, seconds: float) -> dict[str, Any]:
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    columns = [f"x{j}" for j in range(reference.shape[1])]
    ref = pd.DataFrame(reference, columns=columns)
    any_column = dataset = flagged_columns = used = 0
    started = time.perf_counter()
    for window in _bounded(windows, seconds):
        snapshot = Report([DataDriftPreset()]).run(pd.DataFrame(window, columns=columns), ref)
        count = next(m["value"] for m in snapshot.dict()["metrics"] if "DriftedColumnsCount" in m["metric_name"])
        flagged_columns += int(count["count"])
        any_column += int(count["count"] > 0)
        dataset += int(count["share"] >= 0.5)
        used += 1
    elapsed = time.perf_counter() - started
    return {
        "windows": used,
        "drifted_windows": any_column,
        "dataset_drift_windows": dataset,
        "column_alarm_rate": flagged_columns / (used * len(columns)),
        "rows_per_s": used * windows.shape[1] / elapsed,
    }


def alibi(reference: np.ndarray, windows: np.ndarray, seconds: float) -> dict[str, Any]:
    from alibi_detect.cd import KSDrift

    detector = KSDrift(reference.astype(np.float32), p_val=0.05, correction="bonferroni")
    p_values, drifted = [], 0
    started = time.perf_counter()
    for window in _bounded(windows, seconds):
        data = detector.predict(window.astype(np.float32), return_p_val=True)["data"]
        drifted += int(data["is_drift"])
        p_values.append([float(p) for p in data["p_val"]])
    elapsed = time.perf_counter() - started
    return {
        "windows": len(p_values),
        "drifted_windows": drifted,
        "p_values": p_values,
        "rows_per_s": len(p_values) * windows.shape[1] / elapsed,
    }


def nannyml(reference: np.ndarray, windows: np.ndarray, seconds: float) -> dict[str, Any]:
    import nannyml as nml
    import pandas as pd

    columns = [f"x{j}" for j in range(reference.shape[1])]
    size = windows.shape[1]
    started = time.perf_counter()
    calculator = nml.UnivariateDriftCalculator(column_names=columns, chunk_size=size)
    calculator.fit(pd.DataFrame(reference, columns=columns))
    result = calculator.calculate(pd.DataFrame(windows.reshape(-1, windows.shape[2]), columns=columns))
    frame = result.filter(period="analysis").to_df()
    alerts = frame[[c for c in frame.columns if c[-1] == "alert"]].to_numpy(dtype=bool)
    elapsed = time.perf_counter() - started
    return {
        "windows": int(alerts.shape[0]),
        "methods": sorted({c[1] for c in frame.columns if c[-1] == "alert"}),
        "chunk_feature_alert_rate": float(alerts.mean()),
        "drifted_windows": int(alerts.any(axis=1).sum()),
        "rows_per_s": windows.shape[0] * size / elapsed,
    }


if __name__ == "__main__":
    peer, path, max_windows, max_seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    data = np.load(path)
    run = {"evidently": evidently, "alibi": alibi, "nannyml": nannyml}[peer]
    print(json.dumps(run(data["reference"], data["windows"][:max_windows], max_seconds)))
