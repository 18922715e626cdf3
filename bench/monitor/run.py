"""`make bench-monitor`: calibration, detection and throughput of the monitor, side by side with Evidently and
Alibi Detect (each in its own virtualenv, see peers.py). Writes bench/monitor/results.md.

Every loop is bounded in count; the machine is shared, so throughput points run several times and report the
median. `--quick` shrinks everything for a smoke run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from modelyard.events.topics import SERVING_PREDICTIONS
from modelyard.kafka.admin import ensure_topics
from modelyard.kafka.embedded import EmbeddedBroker
from modelyard.kafka.producer import EventPublisher
from modelyard.monitor.adapters.store import SqlMonitorStore
from modelyard.monitor.bootstrap import build_monitor, service
from modelyard.monitor.domain.evaluation import evaluate_window
from modelyard.monitor.domain.incidents import Change, IncidentBook
from modelyard.monitor.domain.policy import MonitorPolicy
from modelyard.monitor.domain.profile import ReferenceProfile, build_profile
from modelyard.monitor.domain.sequential import CusumState
from modelyard.monitor.domain.simulation import Shift, TabularGenerator, calibrate, window_of
from modelyard.monitor.testing import prediction_events, settings, until, write_reference

HERE = Path(__file__).resolve().parent
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


def null_stream(profile: ReferenceProfile, windows: int, seed: int) -> tuple[int, float | None]:
    """False incidents on a null stream and the events until the first one (None: never)."""
    rng = np.random.default_rng(seed)
    book, cusum = IncidentBook(POLICY.alarm), dict[str, CusumState]()
    false, first = 0, None
    for w in range(windows):
        window = window_of(profile, GENERATOR.columns(rng, WINDOW), start=w * 60.0)
        _, outcomes = evaluate_window(profile, window, POLICY, cusum)
        drift = [o for o in outcomes if o.key.signal.value in ("data_drift", "prediction_drift")]
        opened = [c for o in drift if (c := book.observe(o, str(w))) and c.change is Change.OPENED]
        false += len(opened)
        if opened and first is None:
            first = (w + 1) * WINDOW
    return false, first


def detect(profile: ReferenceProfile, scenario: Scenario, windows: int, seed: int) -> tuple[int | None, set[str]]:
    """Events from the drift's start until an incident opens (None: missed) and the features incidents named."""
    rng = np.random.default_rng(seed)
    book, cusum = IncidentBook(POLICY.alarm), dict[str, CusumState]()
    named: set[str] = set()
    delay = None
    for w in range(windows):
        shift = scenario.shift
        if scenario.gradual:
            ramp = min(1.0, (w + 1) / max(windows // 2, 1))
            shift = Shift(shift.numeric_features, shift.mean_sd * ramp, shift.scale)
        window = window_of(profile, GENERATOR.columns(rng, WINDOW, shift), start=w * 60.0)
        _, outcomes = evaluate_window(profile, window, POLICY, cusum)
        for o in outcomes:
            change = book.observe(o, str(w))
            if change and change.change is Change.OPENED and o.key.signal.value in ("data_drift", "data_quality"):
                named.add(o.key.feature)
                if delay is None:
                    delay = (w + 1) * WINDOW
    return delay, named


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


async def end_to_end(n: int, repeats: int, synchronous: Literal["FULL", "NORMAL"]) -> tuple[float, int]:
    """Predictions per second through Kafka consume + decode + windows + statistics + checkpoint, and peak RSS."""
    rates = []
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        await ensure_topics(broker.bootstrap)
        for r in range(repeats):
            data = Path(tmp) / str(r)
            model = f"bench{r}"
            config = settings(broker.bootstrap, data).model_copy(update={"sqlite_synchronous": synchronous})
            write_reference(config.resolved_reference_dir, model, 1, rows=50_000, generator=GENERATOR)
            events = prediction_events(model, 1, n, seed=r, batch=200, generator=GENERATOR)
            async with EventPublisher(broker.bootstrap) as publisher:
                await publisher.publish_many(SERVING_PREDICTIONS, events)
            parts = build_monitor(config)

            def seen(store: SqlMonitorStore = parts.store, model: str = model) -> int:
                return sum(x.records_seen for x in store.statuses(model))

            async with service(parts).running():
                # Timed from the first handled batch: start-up and the consumer group join are not throughput.
                await until(lambda: seen() > 0, "the first batch", timeout_s=120)
                started, first = time.perf_counter(), seen()
                await until(lambda: seen() >= n, "every prediction", timeout_s=900)
                rates.append((n - first) / (time.perf_counter() - started))
            parts.engine.dispose()
    return statistics.median(rates), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def peers(quick: bool, reference: dict[str, np.ndarray], windows: list[dict[str, np.ndarray]]) -> dict[str, object]:
    """Run peers.py in each peer's virtualenv (created on first use); {} for a peer that cannot be installed."""
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.npz"
        np.savez(data, reference=_matrix(reference), windows=np.stack([_matrix(w) for w in windows]))
        for peer, packages, most in (
            ("evidently", ["evidently==0.7.*", "pandas<3"], 2 if quick else 5),
            ("alibi", ["alibi-detect", "pandas"], len(windows)),
        ):
            venv = PEER_VENVS / peer
            python = venv / "bin" / "python"
            try:
                if not python.exists():
                    subprocess.run(["uv", "venv", "-q", "--python", sys.executable, str(venv)], check=True, timeout=120)
                    subprocess.run(
                        ["uv", "pip", "install", "-q", "--python", str(python), *packages], check=True, timeout=900
                    )
                out = subprocess.run(
                    [str(python), str(HERE / "peers.py"), peer, str(data), str(most)],
                    check=True,
                    timeout=1800,
                    capture_output=True,
                    text=True,
                )
                results[peer] = json.loads(out.stdout.strip().splitlines()[-1])
            except (subprocess.SubprocessError, OSError, ValueError) as exc:
                results[peer] = {"error": repr(exc)[:300]}
    return results


def _matrix(columns: dict[str, np.ndarray]) -> np.ndarray:
    return np.column_stack([np.asarray(columns[f], dtype=np.float64) for f in FEATURES])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--no-peers", action="store_true", help="skip Evidently and Alibi Detect")
    args = parser.parse_args()
    quick = args.quick
    null_windows, drift_windows, reps = (30, 6, 1) if quick else (300, 12, 3)
    reference = GENERATOR.columns(np.random.default_rng(0), 50_000)
    profile = build_profile("bench", 1, reference, source="bench")
    lines = [
        f"# Monitor benchmark\n\nW={WINDOW}, {GENERATOR.n_numeric} correlated numeric features (rho=0.3), "
        f"1 categorical, 1 score; budget {POLICY.alarm.false_incidents_per_week}/week, "
        f"k-of-m {POLICY.alarm.open_after}/{POLICY.alarm.open_within}; machine: {os.cpu_count()} cores, shared.\n"
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

    false, first = null_stream(profile, null_windows, seed=3)
    events = null_windows * WINDOW
    lines.append("## (a) Null stream\n")
    lines.append("| system | events | false incidents | per 10k events | first false alarm at |")
    lines.append("|---|---|---|---|---|")
    lines.append(f"| modelyard | {events} | {false} | {false / events * 1e4:.3f} | {first or 'never'} |")

    rng = np.random.default_rng(4)
    null_windows_data = [GENERATOR.columns(rng, WINDOW) for _ in range(min(null_windows, 50))]
    peer_results = {} if args.no_peers else peers(quick, reference, null_windows_data)
    for peer, result in peer_results.items():
        if isinstance(result, dict) and "error" not in result:
            lines.append(
                f"| {peer} (per window, {result['windows']} windows) | {result['windows'] * WINDOW} | "
                f"{result['drifted_windows']} windows flagged | - | - |"
            )
        else:
            lines.append(f"| {peer} | - | not run: {result} | - | - |")
    lines.append("")

    lines.append("## (b) Injected drift\n")
    lines.append("| scenario | detected | median delay (events) | right features named |")
    lines.append("|---|---|---|---|")
    for scenario in scenarios():
        runs = [detect(profile, scenario, drift_windows, seed=100 + r) for r in range(reps)]
        delays = [d for d, _ in runs if d is not None]
        right = sum(1 for d, named in runs if d is not None and named & scenario.blamed and named <= scenario.blamed)
        median = f"{statistics.median(delays):.0f}" if delays else "-"
        lines.append(f"| {scenario.name} | {len(delays)}/{reps} | {median} | {right}/{reps} |")
    lines.append("")

    lines.append("## (c) Throughput\n")
    rate = stats_rate(profile, 3)
    lines.append(f"- statistics only (evaluate_window, {GENERATOR.n_numeric + 2} features): {rate:,.0f} rows/s")
    for synchronous in ("FULL", "NORMAL"):
        e2e, rss = asyncio.run(end_to_end(5_000 if quick else 50_000, 1 if quick else 3, synchronous))
        lines.append(
            f"- end to end (Kafka consume + decode + windows + statistics + SQLite checkpoint with "
            f"synchronous={synchronous}, 1 process, batches of 200): {e2e:,.0f} predictions/s; peak RSS {rss} MiB"
        )
    for peer, result in peer_results.items():
        if isinstance(result, dict) and "rows_per_s" in result:
            lines.append(
                f"- {peer}: {result['rows_per_s']:,.0f} rows/s per window (statistics only, same "
                f"reference and windows); modelyard's statistics are {rate / result['rows_per_s']:,.0f}x that"
            )
    out = HERE / "results.md"
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


if __name__ == "__main__":
    main()
