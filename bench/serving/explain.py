"""Explanation benchmark: per-row explanation latency, and inference throughput with and without explanations.

One Modelyard serving process (the prediction stream on, embedded broker, as in bench/serving/run.py) serves two
models: the demo's (a logistic regression on breast cancer, 30 features) and an MLP of about 1.1M parameters on
the same features. Both have a reference dataset (the breast cancer rows) next to them, so explanations draw their
background sample from it.

1. Latency: one-row `ExplanationService/Explain` calls, one at a time, on a warm pool of a fixed size; p50/p99
   over the calls.
2. Interference: h2load's inference throughput on the demo's model (one row per request, the peers' load of
   bench/serving/run.py) measured alone and while a client keeps the explanation pool busy with the large model,
   interleaved (alone, busy, alone, busy...) `--runs` times; medians, their ratio, and the spread of the runs
   alone as the noise.

Usage: uv run python bench/serving/explain.py [--runs 3] [--duration 5] [--out bench/serving/explain.md]
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import grpc
import numpy as np
from run import check_sample, ensure_h2load, grpc_frame, h2load, heavy_model, modelyard, percentile, request_body

from modelyard.contracts.inference import grpc_service_pb2 as pb
from modelyard.contracts.serving.v1 import explanation_service_pb2 as epb
from modelyard.contracts.serving.v1 import explanation_service_pb2_grpc as epb_grpc
from modelyard.testing.models import train_models

HERE = Path(__file__).resolve().parent
POOL = {"workers": 1, "queue": 1, "background_rows": 50, "permutations": 5, "niceness": 19}
IN_FLIGHT = (1, 32)  # h2load loads of bench/serving/run.py


def commit() -> str:
    described = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE)
    dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, cwd=HERE).stdout
    return described.stdout.strip() + (" (uncommitted changes)" if dirty.strip() else "")


def reference_csv(rows: np.ndarray) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([f"X[{j}]" for j in range(rows.shape[1])])
    writer.writerows(rows.tolist())
    return out.getvalue().encode()


def explain_request(model: str, row: np.ndarray) -> epb.ExplainRequest:
    inputs = pb.ModelInferRequest(model_name=model, id="bench")
    inputs.inputs.add(name="X", datatype="FP32", shape=[1, row.shape[-1]])
    inputs.raw_input_contents.append(row.astype(np.float32).tobytes())
    return epb.ExplainRequest(inputs=inputs)


def explain_latencies(stub: epb_grpc.ExplanationServiceStub, model: str, rows: np.ndarray) -> list[float]:
    stub.Explain(explain_request(model, rows[0]), timeout=600)  # warm: worker started, model and background loaded
    latencies = []
    for row in rows:
        began = time.perf_counter()
        answer = stub.Explain(explain_request(model, row), timeout=600)
        latencies.append((time.perf_counter() - began) * 1000)
        (output,) = answer.rows[0].outputs
        if abs(output.base_value + sum(output.attributions) - output.prediction) > 1e-4:
            raise SystemExit(f"{model}: attributions do not add up to the prediction")
    return latencies


class BusyPool:
    """Keeps the explanation pool working: one large-model explanation after another, on its own thread."""

    def __init__(self, stub: epb_grpc.ExplanationServiceStub, rows: np.ndarray) -> None:
        self.stub, self.rows = stub, rows
        self.done = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.stub.Explain(explain_request("heavy", self.rows[self.done % len(self.rows)]), timeout=600)
            self.done += 1

    def __enter__(self) -> BusyPool:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def spread(values: Sequence[float]) -> float:
    return (max(values) - min(values)) / statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="interleaved runs per throughput point")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per throughput run")
    parser.add_argument("--tiny-rows", type=int, default=40, help="explanations timed for the demo's model")
    parser.add_argument("--heavy-rows", type=int, default=10, help="explanations timed for the 1.1M model")
    parser.add_argument("--out", type=Path, default=HERE / "explain.md")
    args = parser.parse_args()

    binary = ensure_h2load()
    load_before = os.getloadavg()
    started = datetime.now(UTC)
    work = Path(tempfile.mkdtemp(prefix="modelyard-bench-explain-"))
    demo = train_models()["breast-cancer"]
    paths = {"tiny": work / "tiny.onnx", "heavy": work / "heavy.onnx"}
    paths["tiny"].write_bytes(demo.onnx)
    paths["heavy"].write_bytes(heavy_model())
    data = np.loadtxt(io.BytesIO(demo.reference_csv), delimiter=",", skiprows=1, dtype=np.float32)[:, :-1]
    for name in paths:  # the layout bench/serving/run.py's `modelyard` copies the models into
        reference = work / "modelyard" / "models" / name / "1" / "reference.csv"
        reference.parent.mkdir(parents=True)
        reference.write_bytes(reference_csv(data))
    for key, value in POOL.items():
        os.environ[f"MODELYARD_SERVING_EXPLAIN_{key.upper()}"] = str(value)
    row = np.linspace(-1.0, 1.0, 30, dtype=np.float32)
    frame = work / "tiny.frame"
    frame.write_bytes(grpc_frame(request_body("tiny", row)))
    explained = data[np.random.default_rng(0).choice(len(data), max(args.tiny_rows, args.heavy_rows), replace=False)]

    with modelyard(work, paths) as server:
        port = server.ports["tiny"]
        check_sample(port, "tiny", request_body("tiny", row))
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = epb_grpc.ExplanationServiceStub(channel)  # type: ignore[no-untyped-call]
            latency = {
                "tiny": explain_latencies(stub, "tiny", explained[: args.tiny_rows]),
                "heavy": explain_latencies(stub, "heavy", explained[: args.heavy_rows]),
            }
            print({name: f"p50 {percentile(v, 0.5):.0f} ms" for name, v in latency.items()}, flush=True)
            throughput: dict[tuple[str, int], list[float]] = {}
            busy_explanations = []
            for run in range(args.runs):
                for in_flight in IN_FLIGHT:
                    alone, _ = h2load(binary, port, frame, in_flight, args.duration, work / "h2load.log")
                    with BusyPool(stub, explained) as busy:
                        time.sleep(0.5)  # the pool is at work before the load starts
                        during, _ = h2load(binary, port, frame, in_flight, args.duration, work / "h2load.log")
                    busy_explanations.append(busy.done)
                    throughput.setdefault(("alone", in_flight), []).append(alone)
                    throughput.setdefault(("busy", in_flight), []).append(during)
                    print(f"run {run + 1} x{in_flight}: {alone:,.0f} alone, {during:,.0f} req/s busy", flush=True)
    load_after = os.getloadavg()

    lines = [
        "# Explanation benchmark",
        "",
        f"Written by `uv run python bench/serving/explain.py --runs {args.runs} --duration {args.duration:g}` at "
        f"commit {commit()}, {started:%Y-%m-%d %H:%M} UTC, on {os.cpu_count()} cores shared with other work "
        f"(1/5/15-minute load average before: {'/'.join(f'{x:.1f}' for x in load_before)}, after: "
        f"{'/'.join(f'{x:.1f}' for x in load_after)}).",
        "",
        f"Serving: {server.config}.",
        "",
        f"Explanation pool, in each serving worker: {POOL['workers']} worker process at nice {POOL['niceness']}, "
        f"{POOL['queue']} waiting place; background sample "
        f"{POOL['background_rows']} rows of the reference dataset; shap's permutation explainer with "
        f"{POOL['permutations']} permutations (each (2 x 30 + 1) model runs on the background per row).",
        "",
        "## Explanation latency (one row per request, one request at a time, warm pool)",
        "",
        "| model | parameters | rows timed | p50 ms | p99 ms |",
        "|---|---|---|---|---|",
    ]
    sizes = {"tiny": "31 (demo: logistic regression)", "heavy": "~1.1M (MLP 1024x1024)"}
    for name, values in latency.items():
        p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
        lines.append(f"| {name} | {sizes[name]} | {len(values)} | {p50:.0f} | {p99:.0f} |")
    lines += [
        "",
        "## Inference throughput of the demo's model, alone and while the pool explains the large model",
        "",
        f"h2load, one-row ModelInfer, {args.duration:g} s per run; medians of {args.runs} interleaved runs. Noise: "
        "the spread (max - min) / median of the runs alone.",
        "",
        "| in flight | alone req/s | busy req/s | busy / alone | noise (alone) |",
        "|---|---|---|---|---|",
    ]
    for in_flight in IN_FLIGHT:
        alone, busy = throughput["alone", in_flight], throughput["busy", in_flight]
        ratio = statistics.median(busy) / statistics.median(alone)
        lines.append(
            f"| {in_flight} | {statistics.median(alone):,.0f} | {statistics.median(busy):,.0f} | {ratio:.2f} | "
            f"{spread(alone):.0%} |"
        )
    lines += [
        "",
        f"Large-model explanations completed during the busy runs: {busy_explanations}.",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
