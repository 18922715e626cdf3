"""`make bench-monitor` (part): performance decay from labels and CBPE before labels, on four synthetic streams.

A calibrated logistic classifier (score = P(positive | x), class = score > 0.5) and its reference (20,000 rows
with outputs and truth). Each stream is 5,000 labelled rows like the reference, then 15,000 rows of:

- (a) abrupt: a 3-point accuracy drop with no covariate shift (truth flipped on a share 0.03 / (2A - 1) of rows);
- (b) gradual: the flipped share ramps up over the 15,000 rows to a 5-point drop;
- (c) covariate shift that does not hurt accuracy: x0 moves +0.5 SD (the model grows more confident, and right);
- (d) null: more of the reference's distribution.

Labels arrive in batches of 250 at 100 predictions/s of event time, with their predictions' scores and classes,
through the monitor's own performance tests (`degradation.observe_errors`: the likelihood-ratio CUSUM on each row's
outcome given its calibrated probability of being right, against label noise worth the minimum drop, whose first
crossing opens an incident by itself, and label windows of 500 through k-of-m 2/3; budget 1 false incident per
week); CBPE runs on prediction windows of 1,000
(`evaluate_window`). An incident counts at the end of the batch of labels that opened it. Beside the table, per
seed, and the labelled rows to detect (a) at looser false-alarm budgets (the trade-off the budget sets).
Writes bench/monitor/performance.md.

Beside it, on the same streams, NannyML (its own virtualenv, `performance_peer.py`): PerformanceCalculator on
chunks of 500 labelled rows and CBPE on chunks of 1,000 predictions, with their default alert thresholds.
`--no-peers` skips it.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
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
PEER_VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "modelyard-bench-monitor" / "nannyml"
UV = [os.environ.get("UV") or "uv"]  # `uv run` sets UV to its own binary
POLICY = MonitorPolicy()
RATE = 100.0
BEFORE, AFTER, BATCH, WINDOW = 5_000, 15_000, 250, 1_000
SEEDS = range(5)
BUDGETS = (1.0, 10.0, 100.0)  # false incidents per week, for the trade-off table


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
class PeerRun:
    first_alert: int | None  # labelled rows after the change to the end of NannyML's first alerting chunk
    false_alerts: int  # alerting chunks before the change (or at all on c and d)
    cbpe_error: float
    cbpe_alerts: int
    version: str


def nannyml(profile_rows: dict[str, np.ndarray], data: dict[str, np.ndarray], kind: str) -> PeerRun:
    """NannyML's realised performance and CBPE on the same reference and stream, in its own virtualenv."""
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([*UV, "venv", "-q", "--python", sys.executable, str(PEER_VENV)], check=True, timeout=120)
        # NannyML imports statsmodels without requiring it (as in run.py's PEER_PACKAGES).
        subprocess.run(
            [*UV, "pip", "install", "-q", "--python", str(python), "nannyml", "statsmodels"], check=True, timeout=600
        )
    keys = ("output:probabilities[1]", "output:label", "truth:label")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.npz"
        np.savez(
            path,
            reference=np.column_stack([profile_rows[k] for k in keys]),
            stream=np.column_stack([data[k] for k in keys]),
        )
        out = subprocess.run(
            [
                str(python),
                str(HERE / "performance_peer.py"),
                str(path),
                str(POLICY.performance.window_labels),
                str(WINDOW),
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "NML_DISABLE_USAGE_LOGGING": "1"},
        )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    chunk = POLICY.performance.window_labels
    alerts = [(i + 1) * chunk for i, alert in enumerate(result["realised_alerts"]) if alert]
    after = [end - BEFORE for end in alerts if end > BEFORE]
    drifting = kind in ("a", "b")
    realised = 1 - float((data["output:label"] != data["truth:label"])[BEFORE:].mean())
    estimated = result["estimated"][BEFORE // WINDOW :]
    return PeerRun(
        after[0] if drifting and after else None,
        len(alerts) - (len(after) if drifting else 0),
        abs(float(np.mean(estimated)) - realised),
        sum(result["estimated_alerts"]),
        result["version"],
    )


@dataclass(frozen=True)
class Run:
    first_incident: int | None  # labelled rows after the change when the first performance incident opened
    false_incidents: int  # performance incidents opened before the change (or at all on c and d)
    critical: bool
    cbpe_error: float  # |mean estimated - realised| accuracy over the rows after the change
    cbpe_incidents: int


def run(profile: ReferenceProfile, kind: str, data: dict[str, np.ndarray]) -> Run:
    errors = (data["output:label"] != data["truth:label"]).astype(np.float64)
    opened = incidents(profile, data, POLICY)
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


def incidents(profile: ReferenceProfile, data: dict[str, np.ndarray], policy: MonitorPolicy) -> list[tuple[int, bool]]:
    """(labelled rows seen, critical) for each performance incident the labels open, in batches of BATCH."""
    state = VersionState.new("m", 1, policy)
    state.records_per_second = RATE
    opened: list[tuple[int, bool]] = []
    errors = (data["output:label"] != data["truth:label"]).astype(np.float64)
    scores, positive = data["output:probabilities[1]"], data["output:label"] == 1
    for start in range(0, errors.size, BATCH):
        times = 1.7e9 + np.arange(start, start + BATCH) / RATE
        batch = slice(start, start + BATCH)
        for closed in observe_errors(state, profile, errors[batch], times, policy, scores[batch], positive[batch]):
            change = state.book.observe(closed.outcome, closed.window)
            if change is not None and change.change is Change.OPENED:
                opened.append((start + BATCH, change.severity.name == "CRITICAL"))
    return opened


def trade_off(profile: ReferenceProfile, streams: dict[str, list[dict[str, np.ndarray]]]) -> list[str]:
    """Labelled rows to detect (a), and false incidents on (c) and (d), at looser false-alarm budgets."""
    lines = [
        "\nDetection of (a) against the false-alarm budget (modelyard's label tests only, same streams):\n",
        "| false incidents / week | (a) labelled rows to first incident, median (max) | false incidents on (c), (d) |",
        "|---|---|---|",
    ]
    for budget in BUDGETS:
        policy = dataclasses.replace(POLICY, alarm=dataclasses.replace(POLICY.alarm, false_incidents_per_week=budget))
        delays, false = [], 0
        for kind in "acd":
            for data in streams[kind]:
                opened = incidents(profile, data, policy)
                after = [at - BEFORE for at, _ in opened if at > BEFORE]
                if kind == "a" and after:
                    delays.append(after[0])
                false += len(opened) - (len(after[:1]) if kind == "a" else 0)
        delay = f"{statistics.median(delays):,.0f} ({max(delays):,})" if delays else "-"
        lines.append(f"| {budget:g} | {delay} ({len(delays)}/{len(streams['a'])} detected) | {false} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-peers", action="store_true", help="skip NannyML")
    args = parser.parse_args()
    reference = rows(np.random.default_rng(100), 20_000)
    profile = build_profile("bench", 1, reference, source="bench")
    accuracy = profile.baseline["accuracy"]
    lines = [
        "# Performance monitoring benchmark\n",
        f"Commit {_commit()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, CPython {platform.python_version()}, "
        f"{os.cpu_count()} cores shared, load {os.getloadavg()[0]:.2f}; reference accuracy {accuracy.value:.3f} "
        f"± {accuracy.standard_error:.3f} (20,000 rows); {len(SEEDS)} seeds per scenario; policy: minimum drop "
        f"{POLICY.performance.min_accuracy_drop}, critical {POLICY.performance.critical_accuracy_drop}, label "
        f"windows of {POLICY.performance.window_labels}, k-of-m {POLICY.alarm.open_after}/{POLICY.alarm.open_within}, "
        f"{POLICY.alarm.false_incidents_per_week} false incident/week at {RATE:.0f} predictions/s "
        "(`bench/monitor/performance.py`). NannyML (PerformanceCalculator and CBPE, accuracy, defaults) on the "
        f"same reference and streams, chunks of {POLICY.performance.window_labels} labels / {WINDOW} predictions; "
        "a NannyML alert is per chunk (counted at the chunk's end); a modelyard incident opens at the first "
        "crossing of the likelihood-ratio CUSUM (each label's outcome given its calibrated probability of being "
        "right), or when k of m label windows breach the z-test (counted at the end of the batch of "
        f"{BATCH} labels that opened it).\n",
        "| scenario | system | detected (of seeds) | labelled rows to first incident / alert, median (max) "
        "| critical | false incidents / alerts | CBPE: estimated - realised accuracy after the change, median abs "
        "| CBPE incidents / alerts |",
        "|---|---|---|---|---|---|---|---|",
    ]
    names = {
        "a": "(a) abrupt 3-point drop",
        "b": "(b) gradual, to 5 points",
        "c": "(c) covariate shift",
        "d": "(d) null",
    }
    versions = set()
    streams = {kind: [stream(kind, seed, accuracy.value) for seed in SEEDS] for kind in names}
    per_seed = []
    for kind, name in names.items():
        runs = [run(profile, kind, data) for data in streams[kind]]
        ours = [(r.first_incident, r.false_incidents, r.cbpe_error, r.cbpe_incidents) for r in runs]
        critical = f"{sum(r.critical for r in runs)}/{len(runs)}" if kind in "ab" else "-"
        lines.append(_row(name, "modelyard", kind, ours, critical))
        peers = [] if args.no_peers else [nannyml(reference, data, kind) for data in streams[kind]]
        if peers:
            versions |= {p.version for p in peers}
            theirs = [(p.first_alert, p.false_alerts, p.cbpe_error, p.cbpe_alerts) for p in peers]
            lines.append(_row(name, "NannyML", kind, theirs, "-"))
        if kind in "ab":
            per_seed += [
                f"| {name} | {seed} | {_rows(r.first_incident)} | {_rows(p.first_alert) if peers else '-'} |"
                for seed, r, p in itertools.zip_longest(SEEDS, runs, peers)
            ]
    lines += [
        "\nPer seed, labelled rows after the change to the first incident / alert (same stream for both):\n",
        "| scenario | seed | modelyard | NannyML |",
        "|---|---|---|---|",
        *per_seed,
        *trade_off(profile, streams),
    ]
    if versions:
        lines.append(f"\nNannyML {', '.join(sorted(versions))}.")
    (HERE / "performance.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _row(name: str, system: str, kind: str, runs: list[tuple[int | None, int, float, int]], critical: str) -> str:
    delays = [d for d, _, _, _ in runs if d is not None]
    detected = f"{len(delays)}/{len(runs)}" if kind in "ab" else "-"
    delay = f"{statistics.median(delays):,.0f} ({max(delays):,})" if delays else "-"
    false = sum(f for _, f, _, _ in runs)
    cbpe = statistics.median(e for _, _, e, _ in runs)
    return (
        f"| {name} | {system} | {detected} | {delay} | {critical} | {false} | {cbpe:.4f} | {sum(a for *_, a in runs)} |"
    )


def _rows(delay: int | None) -> str:
    return "missed" if delay is None else f"{delay:,}"


def _commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    main()
