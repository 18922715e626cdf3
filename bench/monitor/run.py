"""`make bench-monitor`: calibration, detection and throughput of the monitor, side by side with Evidently and
Alibi Detect (each in its own virtualenv, see peers.py). Writes bench/monitor/results.md.

Every loop is bounded in count; the machine is shared, so throughput points run several times and report the
median. `--quick` shrinks everything for a smoke run.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import psutil
import sqlalchemy as sa

from modelyard.events.topics import SERVING_PREDICTIONS
from modelyard.kafka.admin import ensure_topics
from modelyard.kafka.embedded import EmbeddedBroker
from modelyard.kafka.producer import EventPublisher
from modelyard.monitor.adapters.store import SqlMonitorStore
from modelyard.monitor.config import MonitorSettings
from modelyard.monitor.domain.evaluation import evaluate_window
from modelyard.monitor.domain.incidents import Change, IncidentBook, Signal
from modelyard.monitor.domain.policy import WEEK_S, MonitorPolicy
from modelyard.monitor.domain.profile import ReferenceProfile, build_profile
from modelyard.monitor.domain.sequential import CusumState
from modelyard.monitor.domain.simulation import Shift, TabularGenerator, calibrate, window_of
from modelyard.monitor.testing import prediction_events, setting_values, until, write_reference
from modelyard.sql.engine import create_engine

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from report import UV, git_commit, load_average, package_versions  # noqa: E402  (bench/report.py)

# Outside the work tree, so linters and git never see the peers' installed packages.
PEER_VENVS = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "modelyard-bench-monitor"
GENERATOR = TabularGenerator(n_numeric=20, rho=0.3)
POLICY = MonitorPolicy()
WINDOW = POLICY.window.max_events
FEATURES = [f"x[{j}]" for j in range(GENERATOR.n_numeric)]


@dataclass(frozen=True)
class Scenario:
    name: str
    shift: Shift
    blamed: frozenset[str]  # the features a correct detector names
    gradual: bool = False  # ramp the shift in over the first half of the drifted windows


def scenarios() -> list[Scenario]:
    every = tuple(range(GENERATOR.n_numeric))
    result = []
    for sd in (0.05, 0.1, 0.25, 0.5):
        result.append(Scenario(f"mean +{sd} SD, 1 feature", Shift((7,), sd), frozenset({"x[7]"})))
        result.append(Scenario(f"mean +{sd} SD, 2 features", Shift((7, 9), sd), frozenset({"x[7]", "x[9]"})))
        result.append(Scenario(f"mean +{sd} SD, all features", Shift(every, sd), frozenset(FEATURES)))
    result += [
        Scenario("scale x1.5, 1 feature", Shift((7,), scale=1.5), frozenset({"x[7]"})),
        Scenario("categorical shift", Shift(category_weights=(0.2, 0.2, 0.2, 0.2, 0.2)), frozenset({"segment"})),
        Scenario("new categories 5%", Shift(new_category_share=0.05), frozenset({"segment"})),
        Scenario("gradual mean +0.5 SD, 1 feature", Shift((7,), 0.5), frozenset({"x[7]"}), gradual=True),
    ]
    return result


Columns = dict[str, np.ndarray]


@dataclass(frozen=True)
class Case:
    """One drift scenario's streams (one list of windows per repeat) and what a correct detector names."""

    name: str
    runs: list[list[Columns]]
    blamed: frozenset[str]  # the features a detector may name
    must: frozenset[str]  # ... at least one of which it has to name
    numeric_only: bool  # Alibi's KSDrift (numeric features only) can see it


def synthetic_case(scenario: Scenario, windows: int, repeats: int) -> Case:
    def stream(seed: int) -> list[Columns]:
        rng = np.random.default_rng(seed)
        result = []
        for w in range(windows):
            shift = scenario.shift
            if scenario.gradual:
                ramp = min(1.0, (w + 1) / max(windows // 2, 1))
                shift = Shift(shift.numeric_features, shift.mean_sd * ramp, shift.scale)
            result.append(GENERATOR.columns(rng, WINDOW, shift))
        return result

    numeric_only = scenario.blamed <= set(FEATURES)
    runs = [stream(100 + r) for r in range(repeats)]
    return Case(scenario.name, runs, scenario.blamed, scenario.blamed, numeric_only)


@dataclass(frozen=True)
class RealData:
    profile: ReferenceProfile
    reference: Columns
    null: list[Columns]  # the reference's own rows, resampled uniformly
    cases: list[Case]
    halves_profile: ReferenceProfile  # a random half as the reference ...
    halves_null: list[Columns]  # ... and the other half, resampled uniformly


def real_cases(windows: int, repeats: int, seed: int) -> RealData:
    """scikit-learn's bundled breast cancer data (569 x 30). The reference is every row; a stream resamples the
    same rows, uniformly (null) or with probability exp(beta x standardised feature(s)) (drift), so it differs from
    the reference by the selection and nothing else. A feature counts as drifted when its Wasserstein-1 between the
    rows weighted by the selection and the rows unweighted (the stream's distribution against the reference's) is
    at least half the effect floor, in reference SDs; a correct detector names a conditioning feature and only
    drifted ones.

    Resampling the other half of a random split instead (reference: one half) would add that half's own sampling
    difference from the reference to every window, for every window redraws the same 285 rows: W1 of 0.06-0.19 SD
    per feature, at or above the floor for half of them, real for the monitor and invisible to a selection-only
    ground truth. That split is kept as a second stream without selection (`halves_null`), to show what a small
    reference sees."""
    from scipy.stats import wasserstein_distance
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    names = [str(n).replace(" ", "_") for n in data.feature_names]
    rows = data.data
    ref_columns = dict(zip(names, rows.T, strict=True))
    profile = build_profile("breast_cancer", 1, ref_columns, source="bench")
    z = (rows - rows.mean(axis=0)) / rows.std(axis=0)

    def stream(source: np.ndarray, weights: np.ndarray, seed: int) -> list[Columns]:
        local = np.random.default_rng(seed)
        drawn = [local.choice(len(source), WINDOW, p=weights / weights.sum()) for _ in range(windows)]
        return [dict(zip(names, source[r].T, strict=True)) for r in drawn]

    null = [w for r in range(repeats) for w in stream(rows, np.ones(len(rows)), 200 + r)]
    cases = []
    for conditioning, beta in (((1,), 0.25), ((1,), 0.5), ((1, 4), 0.5)):
        weights = np.exp(beta * z[:, list(conditioning)].sum(axis=1) / np.sqrt(len(conditioning)))
        moved = [
            wasserstein_distance(rows[:, j], rows[:, j], v_weights=weights) / rows[:, j].std()
            for j in range(len(names))
        ]
        drifted = frozenset(n for n, m in zip(names, moved, strict=True) if m >= POLICY.alarm.numeric_effect_floor / 2)
        must = frozenset(names[j] for j in conditioning)
        label = " + ".join(sorted(must)) if len(must) == 1 else f"({' + '.join(sorted(must))}) / sqrt {len(must)}"
        cases.append(
            Case(
                f"breast cancer: P(row) ~ exp({beta} x {label}) ({len(drifted)} features drifted)",
                [stream(rows, weights, 300 + r) for r in range(repeats)],
                drifted | must,
                must,
                numeric_only=True,
            )
        )
    order = np.random.default_rng(seed).permutation(len(rows))
    half, other = rows[order[: len(order) // 2]], rows[order[len(order) // 2 :]]
    halves_profile = build_profile("breast_cancer_half", 1, dict(zip(names, half.T, strict=True)), source="bench")
    halves_null = [w for r in range(repeats) for w in stream(other, np.ones(len(other)), 200 + r)]
    return RealData(profile, ref_columns, null, cases, halves_profile, halves_null)


DATA_SIGNALS = (Signal.DATA_DRIFT, Signal.PREDICTION_DRIFT, Signal.DATA_QUALITY)


def rate_bound(events: int, trials: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper bound of a rate seen `events` times in `trials`."""
    from scipy.stats import beta

    return 1.0 if events >= trials else float(beta.ppf(confidence, events + 1, trials - events))


def null_stream(profile: ReferenceProfile, windows: list[Columns]) -> tuple[int, int, float | None]:
    """Model-level data drift breaches, false incidents and the events until the first one (None: never). A false
    incident is any opened on a data signal (drift, prediction drift or data quality): the signals `detect` counts
    as detections."""
    book, cusum = IncidentBook(POLICY.alarm), dict[str, CusumState]()
    breaches = false = 0
    first = None
    for w, columns in enumerate(windows):
        report, outcomes = evaluate_window(profile, window_of(profile, columns, start=w * 60.0), POLICY, cusum)
        breaches += int(report.model_drift.get(Signal.DATA_DRIFT, False))
        drift = [o for o in outcomes if o.key.signal in DATA_SIGNALS]
        opened = [c for o in drift if (c := book.observe(o, str(w))) and c.change is Change.OPENED]
        false += len(opened)
        if opened and first is None:
            first = (w + 1) * WINDOW
    return breaches, false, first


def detect(profile: ReferenceProfile, windows: list[Columns]) -> tuple[int | None, set[str]]:
    """Events from the drift's start until an incident opens (None: missed) and the features incidents named (in
    their evidence: a data drift incident is about the model and names the features BH named)."""
    book, cusum = IncidentBook(POLICY.alarm), dict[str, CusumState]()
    named: set[str] = set()
    delay = None
    for w, columns in enumerate(windows):
        _, outcomes = evaluate_window(profile, window_of(profile, columns, start=w * 60.0), POLICY, cusum)
        for o in outcomes:
            change = book.observe(o, str(w))
            if change and change.change is Change.OPENED and o.key.signal in DATA_SIGNALS:
                named.update(e.feature for e in change.evidence)
                if delay is None:
                    delay = (w + 1) * WINDOW
    return delay, named


def first_alarm(flags: Sequence[bool], k: int, m: int) -> int | None:
    """Events until k of the last m windows are flagged (None: never): the incident rule, applied to a peer."""
    for w in range(len(flags)):
        if sum(flags[max(0, w - m + 1) : w + 1]) >= k:
            return (w + 1) * WINDOW
    return None


MIN_TAIL_COUNT = 10


def matched_p_val(null_p_values: np.ndarray, target: float, tail: float = 0.01) -> tuple[float, float]:
    """Alibi's KSDrift p_val whose per-window false-alarm rate on null windows is `target`, and the tail factor.

    KSDrift flags a window when min p < p_val / d. For p_val this small the union bound is tight (overlaps are
    O(p_val^2)), so the per-window rate is kappa x p_val, where kappa = P(p < t) / t measures how calibrated each
    feature's p-value is in its tail; kappa is estimated from every (null window, feature) p-value at t = `tail`.
    With fewer than MIN_TAIL_COUNT of them below t (a conservative null, such as windows resampled from the
    reference's own rows) the tail says nothing, and the p-values are taken at face value: kappa = 1, the level
    modelyard's own tests run at (not alpha / 0, which would flag every window).
    """
    below = int(np.sum(null_p_values < tail))
    kappa = below / null_p_values.size / tail if below >= MIN_TAIL_COUNT else 1.0
    return target / kappa, kappa


def alibi_flags(p_values: np.ndarray, p_val: float) -> list[bool]:
    """Alibi's own Bonferroni rule on the per-feature p-values it returned."""
    return [bool(v) for v in p_values.min(axis=1) < p_val / p_values.shape[1]]


def fmt_delays(delays: Sequence[int | None], repeats: int) -> str:
    hits = [d for d in delays if d is not None]
    return f"{len(hits)}/{repeats} | {statistics.median(hits):.0f}" if hits else f"0/{repeats} | -"


def timed(repeats: int, run: Callable[[], float]) -> float:
    """Median of `repeats` runs of `run` (which returns its own rate)."""
    return statistics.median(run() for _ in range(repeats))


def stats_rate(profile: ReferenceProfile, repeats: int) -> float:
    """Windows' statistics alone: rows per second through evaluate_window."""
    rng = np.random.default_rng(0)
    windows = [window_of(profile, GENERATOR.columns(rng, WINDOW), start=w * 60.0) for w in range(20)]

    def run() -> float:
        started = time.perf_counter()
        for window in windows:
            evaluate_window(profile, window, POLICY, {})
        return len(windows) * WINDOW / (time.perf_counter() - started)

    return timed(repeats, run)


@dataclass(frozen=True)
class EndToEnd:
    wall_rate: float  # predictions per wall-clock second
    cpu_rate: float  # predictions per CPU second of the monitor's process
    start_mib: float  # the monitor's RSS when it had handled its first batch (imports, reference profile, caches)
    rss_mib: float  # the largest of the monitor's RSS samples (every 0.1 s) while it consumed
    hwm_mib: float  # the kernel's high-water mark of its RSS (VmHWM), start-up included
    family_mib: float  # the largest RSS of the monitor and its child processes together (reference profiling)


async def end_to_end(n: int, repeats: int, synchronous: Literal["FULL", "NORMAL"]) -> EndToEnd:
    """Predictions through Kafka consume + decode + windows + statistics + checkpoint, the monitor running as a
    process of its own (`python -m modelyard.monitor`, configured by its environment variables), so that its CPU
    time and memory are its own: not the broker's (another process), nor this script's (the producer, the polling).
    One batch goes first, so that start-up and the reference's profile are behind it; the clock starts when it has
    been handled and the other batches are published, the monitor consuming them as they come. Medians over
    `repeats`."""
    runs = []
    for r in range(repeats):
        # A broker per repeat: on a shared topic each repeat's monitor would also read the earlier repeats' records.
        with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
            await ensure_topics(broker.bootstrap)
            model = f"bench{r}"
            # The windows of every other section (W events), not the small ones of the tests' settings.
            values = setting_values(broker.bootstrap, Path(tmp)) | {
                "sqlite_synchronous": synchronous,
                "window_max_events": str(WINDOW),
            }
            config = MonitorSettings.model_validate(values)
            write_reference(config.resolved_reference_dir, model, 1, rows=50_000, generator=GENERATOR)
            events = prediction_events(model, 1, n, seed=r, batch=200, generator=GENERATOR)
            async with EventPublisher(broker.bootstrap) as publisher:
                await publisher.publish_many(SERVING_PREDICTIONS, events[:1])
                rest = functools.partial(publisher.publish_many, SERVING_PREDICTIONS, events[1:])
                runs.append(await _monitor_process(values, config, model, n, rest, Path(tmp) / "monitor.log"))
            del events, rest
    return EndToEnd(*(statistics.median(getattr(run, f) for run in runs) for f in EndToEnd.__dataclass_fields__))


async def _monitor_process(
    values: dict[str, str],
    config: MonitorSettings,
    model: str,
    n: int,
    publish_rest: Callable[[], Awaitable[None]],
    log: Path,
) -> EndToEnd:
    env = {**os.environ, **{f"MODELYARD_MONITOR_{key.upper()}": value for key, value in values.items()}}
    engine = create_engine(config.resolved_database_url)
    store = SqlMonitorStore(engine, POLICY)
    samples: list[int] = []
    family: list[int] = []  # the monitor's RSS plus its children's, start-up included

    def seen() -> int:
        if process.returncode is not None:
            raise RuntimeError(f"the monitor exited with {process.returncode}: see {log}")
        samples.append(watched.memory_info().rss)
        family.append(samples[-1] + sum(_rss(child) for child in watched.children(recursive=True)))
        try:
            return sum(x.records_seen for x in store.statuses(model))
        except sa.exc.OperationalError:  # its tables are not there yet
            return 0

    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "modelyard.monitor", env=env, stdout=out, stderr=out
        )
        watched = psutil.Process(process.pid)
        try:
            # Timed from the first handled batch: start-up and the consumer group join are not throughput.
            await until(lambda: seen() > 0, "the first batch", timeout_s=300, every_s=0.1)
            started, cpu, first, start_rss = time.perf_counter(), _cpu_s(watched), seen(), watched.memory_info().rss
            samples.clear()
            await publish_rest()
            await until(lambda: seen() >= n, "every prediction", timeout_s=900, every_s=0.1)
            wall, cpu = time.perf_counter() - started, _cpu_s(watched) - cpu
            hwm = _vm_hwm(process.pid)
        finally:
            process.terminate()
            await asyncio.wait_for(process.wait(), 30)
            engine.dispose()
    rates = ((n - first) / wall, (n - first) / cpu)
    return EndToEnd(*rates, start_rss / 2**20, max(samples) / 2**20, hwm / 2**20, max(family) / 2**20)


def _rss(process: psutil.Process) -> int:
    try:
        return int(process.memory_info().rss)
    except psutil.NoSuchProcess:  # it exited between the listing and the reading
        return 0


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _vm_hwm(pid: int) -> int:
    """The process's peak resident set (VmHWM, Linux), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


TARGET_CPU_RATE = 60_000  # issue 18
TARGET_RSS_MIB = 300

PEER_PACKAGES = {
    "evidently": ["evidently==0.7.*", "pandas<3"],
    "alibi": ["alibi-detect", "pandas"],
    "nannyml": ["nannyml", "statsmodels"],
}


def peer(name: str, reference: np.ndarray, windows: np.ndarray, most: int, seconds: float) -> dict[str, Any]:
    """Run peers.py in the peer's virtualenv (created on first use); {"error": ...} if it cannot be installed."""
    venv = PEER_VENVS / name
    python = venv / "bin" / "python"
    env = {**os.environ, "NML_DISABLE_USAGE_LOGGING": "1"}  # no telemetry calls from NannyML
    try:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "data.npz"
            np.savez(data, reference=reference, windows=windows)
            if not python.exists():
                subprocess.run([*UV, "venv", "-q", "--python", sys.executable, str(venv)], check=True, timeout=120)
                subprocess.run(
                    [*UV, "pip", "install", "-q", "--python", str(python), *PEER_PACKAGES[name]],
                    check=True,
                    timeout=300,
                )
            out = subprocess.run(
                [str(python), str(HERE / "peers.py"), name, str(data), str(most), str(seconds)],
                check=True,
                timeout=seconds + 600,
                capture_output=True,
                text=True,
                env=env,
            )
        result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        return result
    except (subprocess.SubprocessError, OSError, ValueError) as exc:
        return {"error": repr(exc)[:300]}


def matrix(windows: list[Columns], features: Sequence[str]) -> np.ndarray:
    """Windows x rows x features, float32 (what the peers see: the numeric features)."""
    return np.stack([np.column_stack([w[f] for f in features]) for w in windows]).astype(np.float32)


def peer_versions(skipped: bool) -> str:
    """Each peer's package versions in its virtualenv (after the run: they are installed on first use)."""
    if skipped:
        return "not run (--no-peers)"
    found = [
        package_versions(PEER_VENVS / name / "bin" / "python", package)
        for name, package in (("evidently", "evidently"), ("alibi", "alibi-detect"), ("nannyml", "nannyml"))
    ]
    return ", ".join(found) + " (each in its own virtualenv, statistics on the same windows; one process each)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--no-peers", action="store_true", help="skip Evidently, Alibi Detect and NannyML")
    parser.add_argument("--repeats", type=int, default=None, help="runs per drift scenario (default 3; quick 1)")
    parser.add_argument("--evidently-seconds", type=float, default=None, help="time cap on Evidently's null windows")
    args = parser.parse_args()
    quick = args.quick
    null_windows, drift_windows = (30, 6) if quick else (300, 12)
    reps = args.repeats or (1 if quick else 3)
    evidently_s = args.evidently_seconds or (60.0 if quick else 240.0)
    started = time.perf_counter()
    reference = GENERATOR.columns(np.random.default_rng(0), 50_000)
    profile = build_profile("bench", 1, reference, source="bench")
    # window_of puts 1000 events in a second, so the budget per window (and per 10k events) follows from W.
    windows_per_week = WEEK_S / (WINDOW / 1000.0)
    budget_window = POLICY.alarm.false_incidents_per_week / windows_per_week
    budget_10k = budget_window / WINDOW * 1e4
    load_before, started_at, commit = load_average(), datetime.now(UTC), git_commit()
    lines = [
        f"# Monitor benchmark\n\nW={WINDOW}, {GENERATOR.n_numeric} correlated numeric features (rho=0.3), "
        f"1 categorical, 1 score; budget {POLICY.alarm.false_incidents_per_week}/week, "
        f"k-of-m {POLICY.alarm.open_after}/{POLICY.alarm.open_within}; machine: {os.cpu_count()} cores, shared. "
        f"Streams run at 1000 events/s, so the budget is {budget_window:.2e} false alarms per window "
        f"({budget_10k:.2e} per 10k events); drift runs per scenario: {reps}, {drift_windows} windows each.\n"
    ]

    holdout = GENERATOR.columns(np.random.default_rng(1), 50_000)
    cal = calibrate(profile, holdout, POLICY, windows=null_windows, window_size=WINDOW, seed=2)
    lines.append("## Calibration (null windows resampled from a holdout of the reference)\n")
    lines.append(
        "| windows | per-window alpha | model-level data drift rate | prediction drift rate | feature breach rate |"
    )
    lines.append("|---|---|---|---|---|")
    lines.append(
        f"| {cal.windows} | {cal.alpha:.2e} | {cal.data_drift_rate:.4f} | {cal.prediction_drift_rate:.4f} "
        f"| {cal.feature_breach_rate:.5f} |\n"
    )

    rng = np.random.default_rng(3)
    nulls = [GENERATOR.columns(rng, WINDOW) for _ in range(null_windows)]
    breaches, false, first = null_stream(profile, nulls)
    cases = [synthetic_case(s, drift_windows, reps) for s in scenarios()]
    real_data = real_cases(drift_windows, reps, seed=5)
    real_profile, real_null, real = real_data.profile, real_data.null, real_data.cases
    real_breaches, real_false, real_first = null_stream(real_profile, real_null)
    halves_breaches, halves_false, halves_first = null_stream(real_data.halves_profile, real_data.halves_null)

    ref_matrix, null_matrix = matrix([reference], FEATURES)[0], matrix(nulls, FEATURES)
    numeric = [c for c in cases if c.numeric_only]
    peer_results: dict[str, dict[str, Any]] = {}
    if not args.no_peers:
        peer_results["evidently"] = peer("evidently", ref_matrix, null_matrix, null_windows, evidently_s)
        peer_results["nannyml"] = peer("nannyml", ref_matrix, null_matrix, null_windows, 600.0)
        # Alibi sees the null windows (for its calibration and its default rate) and then every numeric drift run.
        drift_matrix = matrix([w for c in numeric for run in c.runs for w in run], FEATURES)
        peer_results["alibi"] = peer("alibi", ref_matrix, np.concatenate([null_matrix, drift_matrix]), 10**6, 1800.0)
        names = sorted(real_data.reference)
        real_ref = matrix([real_data.reference], names)[0]
        real_windows = matrix(real_null + [w for c in real for run in c.runs for w in run], names)
        peer_results["alibi_real"] = peer("alibi", real_ref, real_windows, 10**6, 600.0)
    failed = {name: result["error"] for name, result in peer_results.items() if "error" in result}
    if failed:  # a one-sided table compares nothing: no results file, a non-zero exit
        sys.exit(f"peers failed, no results written: {failed}")
    alibi_ok = "p_values" in peer_results.get("alibi", {}) and "p_values" in peer_results.get("alibi_real", {})

    lines.append("## (a) Null streams\n")
    lines.append(
        "A peer alarms on every flagged window (it has no incident rule), so its false alarms per 10k events are "
        f"its flagged windows per 10k events; the budget is {budget_10k:.2e} per 10k events.\n"
    )
    lines.append("| system | windows | false alarms | per-window rate | per 10k events | first false alarm at |")
    lines.append("|---|---|---|---|---|---|")
    lines.append(
        f"| modelyard (incidents; model-level data drift breaches: {breaches}) | {null_windows} | {false} | "
        f"{false / null_windows:.4f} | {false / null_windows / WINDOW * 1e4:.3f} | {first or 'never'} |"
    )
    lines.append(
        f"| modelyard, breast cancer null stream (breaches: {real_breaches}) | {len(real_null)} | {real_false} | "
        f"{real_false / len(real_null):.4f} | {real_false / len(real_null) / WINDOW * 1e4:.3f} | "
        f"{real_first or 'never'} |"
    )
    halves = len(real_data.halves_null)
    lines.append(
        f"| modelyard, breast cancer other half (reference: a random half; stream: the other half, which differs "
        f"from it by sampling alone; breaches: {halves_breaches}) | {halves} | {halves_false} | "
        f"{halves_false / halves:.4f} | {halves_false / halves / WINDOW * 1e4:.3f} | {halves_first or 'never'} |"
    )
    for name, result in peer_results.items():
        if name == "alibi_real":
            continue
        if "error" in result:
            lines.append(f"| {name} | - | not run: {result['error']} | - | - | - |")
            continue
        n = result["windows"]
        flagged = result["drifted_windows"]
        if name == "alibi":
            flags = alibi_flags(np.asarray(result["p_values"][:null_windows]), 0.05)
            n, flagged = len(flags), sum(flags)
            label, first_at = "alibi (KSDrift, Bonferroni, p_val=0.05)", first_alarm(flags, 1, 1)
        elif name == "evidently":
            label, first_at = (
                f"evidently (DataDriftPreset, any column drifted; dataset drift in {result['dataset_drift_windows']}"
                f" windows; column alarm rate {result['column_alarm_rate']:.4f}; {evidently_s:.0f} s cap)",
                None,
            )
        else:
            label, first_at = (
                f"nannyml (defaults: {', '.join(result['methods'])}, any feature alerted; "
                f"per chunk-feature alert rate {result['chunk_feature_alert_rate']:.4f})",
                None,
            )
        lines.append(
            f"| {label} | {n} | {flagged} | {flagged / n:.4f} | {flagged / n / WINDOW * 1e4:.3f} | "
            f"{first_at or ('never' if name == 'alibi' else '-')} |"
        )
    lines.append("")
    bound = rate_bound(false, null_windows)
    lines.append(
        f"What the window count supports: {false} false incidents (data drift, prediction drift and data quality, "
        f"counted as detections are) in {null_windows} null windows bound modelyard's per-window false-incident "
        f"rate below {bound:.2e} (95%, one-sided Clopper-Pearson), {bound / WINDOW * 1e4:.2e} per 10k events: "
        f"{bound / budget_window:,.0f}x the budget of {budget_window:.2e} per window. So this stream shows that the "
        f"rate is below {bound:.2e}, not that it meets the budget; that would take about "
        f"{3 / budget_window:,.0f} null windows without a false incident.\n"
    )

    p_val = kappa = real_p_val = real_kappa = float("nan")
    if alibi_ok:
        alibi_p = np.asarray(peer_results["alibi"]["p_values"])
        real_p = np.asarray(peer_results["alibi_real"]["p_values"])
        p_val, kappa = matched_p_val(alibi_p[:null_windows], cal.alpha)
        real_p_val, real_kappa = matched_p_val(real_p[: len(real_null)], cal.alpha)
        lines.append("## Matched false-alarm budget\n")
        lines.append(
            f"Alibi's KSDrift p_val is set so that its per-window false-alarm rate on the null windows equals "
            f"modelyard's per-window data drift alpha ({cal.alpha:.2e}; modelyard's observed rate is lower still, "
            f"as its alarms also need the effect floor), so the match favours Alibi. Its p-values' tail factor "
            f"kappa = P(p < 0.01) / 0.01 over every null (window, feature), 1 when fewer than {MIN_TAIL_COUNT} "
            f"of them are below 0.01 (a conservative null): {kappa:.3f} synthetic, "
            f"{real_kappa:.3f} breast cancer; matched p_val = alpha / kappa = {p_val:.2e} synthetic, "
            f"{real_p_val:.2e} breast cancer. Flagged null windows at the matched p_val: "
            f"{sum(alibi_flags(alibi_p[:null_windows], p_val))}/{null_windows} synthetic, "
            f"{sum(alibi_flags(real_p[: len(real_null)], real_p_val))}/{len(real_null)} breast cancer. "
            f"Alibi's delay is given both for an alarm at its first flagged window (per-window rate matched, "
            f"incident rate ~{1 / (3 * cal.alpha):.0f}x ours) and under modelyard's own "
            f"{POLICY.alarm.open_after}-of-{POLICY.alarm.open_within} incident rule (incident rate matched too).\n"
        )

    lines.append("## (b) Injected drift\n")
    lines.append(
        "A data drift incident is about the model (Holm's decision) and names, in its evidence, the features "
        "Benjamini-Hochberg named in the window that opened it. Right features: the incidents named at least one "
        "feature that must be named (the shifted ones; for breast cancer the conditioning ones) and none outside the "
        "drifted set (for breast cancer, whose stream resamples the reference's own rows, the features whose "
        "Wasserstein-1 between the selection-weighted and the unweighted rows is at least half the effect floor). "
        "Alibi is run on the numeric scenarios only (KSDrift sees the numeric features).\n"
    )
    lines.append(
        "| scenario | modelyard detected | median delay (events) | right features named (a must-name one named) | "
        "alibi matched, 1st flagged window: detected | median delay | alibi matched, "
        f"{POLICY.alarm.open_after}-of-{POLICY.alarm.open_within}: detected | median delay |"
    )
    lines.append("|---|---|---|---|---|---|---|---|")
    offsets = {"alibi": null_windows, "alibi_real": len(real_null)}
    for dataset, case_profile, group in (("alibi", profile, cases), ("alibi_real", real_profile, real)):
        for case in group:
            runs = [detect(case_profile, run) for run in case.runs]
            hit = sum(1 for d, named in runs if d is not None and named & case.must)
            right = sum(1 for d, named in runs if d is not None and named & case.must and named <= case.blamed)
            row = f"| {case.name} | {fmt_delays([d for d, _ in runs], reps)} | {right}/{reps} ({hit}/{reps}) |"
            if alibi_ok and case.numeric_only:
                p_values = np.asarray(peer_results[dataset]["p_values"])
                threshold = p_val if dataset == "alibi" else real_p_val
                single, incident = [], []
                for run in case.runs:
                    flags = alibi_flags(p_values[offsets[dataset] : offsets[dataset] + len(run)], threshold)
                    offsets[dataset] += len(run)
                    single.append(first_alarm(flags, 1, 1))
                    incident.append(first_alarm(flags, POLICY.alarm.open_after, POLICY.alarm.open_within))
                row += f" {fmt_delays(single, reps)} | {fmt_delays(incident, reps)} |"
            else:
                row += " - | - | - | - |"
            lines.append(row)
    lines.append("")

    lines.append("## (c) Throughput\n")
    rate = stats_rate(profile, 3)
    lines.append(f"- statistics only (evaluate_window, {GENERATOR.n_numeric + 2} features): {rate:,.0f} rows/s")
    for synchronous in ("FULL", "NORMAL"):
        e2e = asyncio.run(end_to_end(5_000 if quick else 100_000, 1 if quick else 3, synchronous))
        lines.append(
            f"- end to end (Kafka consume + decode + windows + statistics + SQLite checkpoint with "
            f"synchronous={synchronous}; the monitor in a process of its own, columnar prediction batches of 200): "
            f"{e2e.cpu_rate:,.0f} predictions/s per CPU second of the monitor's process (target "
            f"{TARGET_CPU_RATE:,}: {'met' if e2e.cpu_rate >= TARGET_CPU_RATE else 'MISSED'}), {e2e.wall_rate:,.0f} "
            f"predictions/s wall clock; the monitor's RSS at its first batch {e2e.start_mib:,.0f} MiB, then while "
            f"consuming, sampled every 0.1 s: peak "
            f"{e2e.rss_mib:,.0f} MiB (target {TARGET_RSS_MIB} MiB: "
            f"{'met' if e2e.rss_mib <= TARGET_RSS_MIB else 'MISSED'}), its kernel high-water mark (start-up "
            f"included) {e2e.hwm_mib:,.0f} MiB; with its child processes (the reference profiled in one at "
            f"start-up, which then exits) at most {e2e.family_mib:,.0f} MiB together"
        )
    for name, result in peer_results.items():
        if name != "alibi_real" and "rows_per_s" in result:
            lines.append(
                f"- {name}: {result['rows_per_s']:,.0f} rows/s per window (statistics only, same "
                f"reference and windows); modelyard's statistics are {rate / result['rows_per_s']:,.1f}x that"
            )
    lines.append(f"\nRuntime: {time.perf_counter() - started:,.0f} s.")
    lines[0] = lines[0].replace(
        "# Monitor benchmark\n",
        f"# Monitor benchmark\n\nWritten by `bench/monitor/run.py{' --quick' if quick else ''}` at commit "
        f"{commit}, {started_at:%Y-%m-%d %H:%M} UTC; load average (1, 5, 15 min) {load_before} before, "
        f"{load_average()} after. Peers: {peer_versions(args.no_peers)}.\n",
        1,
    )
    out = HERE / "results.md"
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


if __name__ == "__main__":
    main()
