"""Runs inside a peer's own virtualenv: `python peers.py evidently|alibi DATA.npz MAX_WINDOWS`; prints one JSON line.

DATA.npz has `reference` (rows x features) and `windows` (windows x rows x features); MAX_WINDOWS caps how many
are used (Evidently takes tens of seconds per report against a 50k-row reference on this shared machine). Each
peer runs its default per-window check: Evidently's DataDriftPreset (its own method per column; for numeric
columns of a large reference, normed Wasserstein > 0.1; dataset drift when half the columns drift) and Alibi
Detect's KSDrift (p < 0.05 with Bonferroni over the features).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np


def evidently(reference: np.ndarray, windows: np.ndarray) -> dict[str, float]:
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    columns = [f"x{j}" for j in range(reference.shape[1])]
    ref = pd.DataFrame(reference, columns=columns)
    any_column = dataset = flagged_columns = 0
    started = time.perf_counter()
    for window in windows:
        snapshot = Report([DataDriftPreset()]).run(pd.DataFrame(window, columns=columns), ref)
        count = next(m["value"] for m in snapshot.dict()["metrics"] if "DriftedColumnsCount" in m["metric_name"])
        flagged_columns += int(count["count"])
        any_column += int(count["count"] > 0)
        dataset += int(count["share"] >= 0.5)
    elapsed = time.perf_counter() - started
    return {
        "windows": len(windows),
        "drifted_windows": any_column,
        "dataset_drift_windows": dataset,
        "column_alarm_rate": flagged_columns / (len(windows) * len(columns)),
        "rows_per_s": windows.shape[0] * windows.shape[1] / elapsed,
    }


def alibi(reference: np.ndarray, windows: np.ndarray) -> dict[str, float]:
    from alibi_detect.cd import KSDrift

    detector = KSDrift(reference.astype(np.float32), p_val=0.05, correction="bonferroni")
    drifted = 0
    started = time.perf_counter()
    for window in windows:
        drifted += int(detector.predict(window.astype(np.float32))["data"]["is_drift"])
    elapsed = time.perf_counter() - started
    return {
        "windows": len(windows),
        "drifted_windows": drifted,
        "rows_per_s": windows.shape[0] * windows.shape[1] / elapsed,
    }


if __name__ == "__main__":
    peer, path, max_windows = sys.argv[1], sys.argv[2], int(sys.argv[3])
    data = np.load(path)
    run = {"evidently": evidently, "alibi": alibi}[peer]
    print(json.dumps(run(data["reference"], data["windows"][:max_windows])))
