"""`make bench-monitor` (part): performance decay from labels and CBPE before labels, on four synthetic streams.

A calibrated logistic classifier (score = P(positive | x), class = score > 0.5) and its reference (20,000 rows
with outputs and truth). Each stream is 5,000 labelled rows like the reference, then 15,000 rows of:

- (a) abrupt: a 3-point accuracy drop with no covariate shift (truth flipped on a share 0.03 / (2A - 1) of rows);
- (b) gradual: the flipped share ramps up over the 15,000 rows to a 5-point drop;
- (c) covariate shift that does not hurt accuracy: x0 moves +0.5 SD (the model grows more confident, and right);
- (d) null: more of the reference's distribution.

Labels arrive in batches of 250 at 100 predictions/s of event time, through the monitor's own performance tests
(`degradation.observe_errors`: CUSUM + label windows of 500, k-of-m 2/3, budget 1 per week); CBPE runs on
prediction windows of 1,000 (`evaluate_window`). Writes bench/monitor/performance.md.

NannyML's realised-performance and CBPE calculators are not run side by side yet (see the report).
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from modelyard.monitor.domain.cbpe import ESTIMATED_ACCURACY
from modelyard.monitor.domain.degradation import observe_errors
from modelyard.monitor.domain.evaluation import evaluate_window
from modelyard.monitor.domain.incidents import Change, Signal
from modelyard.monitor.domain.policy import MonitorPolicy
from modelyard.monitor.domain.profile import ReferenceProfile, build_profile
from modelyard.monitor.domain.simulation import window_of
from modelyard.monitor.domain.state import VersionState

HERE = Path(__file__).resolve().parent
POLICY = MonitorPolicy()
RATE = 100.0
BEFORE, AFTER, BATCH, WINDOW = 5_000, 15_000, 250, 1_000
SEEDS = range(5)


def rows(rng: np.random.Generator, n: int, shift: float = 0.0) -> dict[str, np.ndarray]:
    x = rng.standard_normal((n, 3))
    x[:, 0] += shift
    p = 1 / (1 + np.exp(-(4.0 * x[:, 0] - 2.0 * x[:, 1])))
    truth = (rng.random(n) < p).astype(np.int64)
    return {
        "x[0]": x[:, 0],
        "x[1]": x[:, 1],
        "x[2]": x[:, 2],
        "output:label": (p > 0.5).astype(np.int64),
        "output:probabilities[1]": p,
        "truth:label": truth,
    }


def stream(kind: str, seed: int, accuracy: float) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    before, after = rows(rng, BEFORE), rows(rng, AFTER, 0.5 if kind == "c" else 0.0)
    flip = np.zeros(AFTER)
    if kind == "a":
        flip[:] = 0.03 / (2 * accuracy - 1)
    elif kind == "b":
        flip[:] = np.linspace(0, 0.05 / (2 * accuracy - 1), AFTER)
    after["truth:label"] = np.where(rng.random(AFTER) < flip, 1 - after["truth:label"], after["truth:label"])
    return {k: np.concatenate([before[k], after[k]]) for k in before}


@dataclass(frozen=True)
class Run:
    first_incident: int | None  # labelled rows after the change when the first performance incident opened
    false_incidents: int  # performance incidents opened before the change (or at all on c and d)
    critical: bool
    cbpe_error: float  # |mean estimated - realised| accuracy over the rows after the change
    cbpe_incidents: int


def run(profile: ReferenceProfile, kind: str, seed: int) -> Run:
    data = stream(kind, seed, profile.baseline["accuracy"].value)
    errors = (data["output:label"] != data["truth:label"]).astype(np.float64)
    state = VersionState.new("m", 1, POLICY)
    state.records_per_second = RATE
    opened: list[tuple[int, bool]] = []
    for start in range(0, errors.size, BATCH):
        times = 1.7e9 + np.arange(start, start + BATCH) / RATE
        for closed in observe_errors(state, profile, errors[start : start + BATCH], times, POLICY):
            change = state.book.observe(closed.outcome, closed.window)
            if change is not None and change.change is Change.OPENED:
                opened.append((start + BATCH, change.severity.name == "CRITICAL"))
    after = [(at - BEFORE, critical) for at, critical in opened if at > BEFORE]
    drifting = kind in ("a", "b")
    estimates, cbpe_incidents = [], 0
    for start in range(0, errors.size, WINDOW):
        part = {k: v[start : start + WINDOW] for k, v in data.items() if not k.startswith("truth:")}
        report, outcomes = evaluate_window(profile, window_of(profile, part, start / RATE), POLICY, {})
        if start >= BEFORE:
            estimates.append(report.estimated[ESTIMATED_ACCURACY])
        cbpe_incidents += sum(o.breached and o.key.signal is Signal.PERFORMANCE for o in outcomes)
    return Run(
        after[0][0] if drifting and after else None,
        len(opened) - (len(after[:1]) if drifting else 0),
        bool(after and after[0][1]),
        abs(float(np.mean(estimates)) - (1 - float(errors[BEFORE:].mean()))),
        cbpe_incidents,
    )


def main() -> None:
    profile = build_profile("bench", 1, rows(np.random.default_rng(100), 20_000), source="bench")
    accuracy = profile.baseline["accuracy"]
    lines = [
        "# Performance monitoring benchmark\n",
        f"Commit {_commit()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, CPython {platform.python_version()}, "
        f"{os.cpu_count()} cores shared, load {os.getloadavg()[0]:.2f}; reference accuracy {accuracy.value:.3f} "
        f"± {accuracy.standard_error:.3f} (20,000 rows); {len(SEEDS)} seeds per scenario; policy: minimum drop "
        f"{POLICY.performance.min_accuracy_drop}, critical {POLICY.performance.critical_accuracy_drop}, label "
        f"windows of {POLICY.performance.window_labels}, k-of-m {POLICY.alarm.open_after}/{POLICY.alarm.open_within}, "
        f"{POLICY.alarm.false_incidents_per_week} false incident/week at {RATE:.0f} predictions/s "
        "(`bench/monitor/performance.py`). NannyML: not run yet.\n",
        "| scenario | detected (of seeds) | labelled rows to incident, median (max) | critical | false incidents "
        "| CBPE: estimated - realised accuracy after the change, median abs | CBPE incidents |",
        "|---|---|---|---|---|---|---|",
    ]
    names = {
        "a": "(a) abrupt 3-point drop",
        "b": "(b) gradual, to 5 points",
        "c": "(c) covariate shift",
        "d": "(d) null",
    }
    for kind, name in names.items():
        runs = [run(profile, kind, seed) for seed in SEEDS]
        delays = [r.first_incident for r in runs if r.first_incident is not None]
        detected = f"{len(delays)}/{len(runs)}" if kind in "ab" else "-"
        delay = f"{statistics.median(delays):,.0f} ({max(delays):,})" if delays else "-"
        critical = f"{sum(r.critical for r in runs)}/{len(runs)}" if kind in "ab" else "-"
        lines.append(
            f"| {name} | {detected} | {delay} | {critical} | {sum(r.false_incidents for r in runs)} "
            f"| {statistics.median(r.cbpe_error for r in runs):.4f} | {sum(r.cbpe_incidents for r in runs)} |"
        )
    (HERE / "performance.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    main()
