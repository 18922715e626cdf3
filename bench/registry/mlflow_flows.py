"""MLflow-client flows, side by side: the same MlflowClient calls against the Modelyard registry and a real MLflow
server, in one run, on one machine, both keeping artifacts on the same moto S3 server.

- Modelyard: `python -m modelyard.registry` (one process; SQLite; artifacts_url=s3://<bucket>/modelyard).
- MLflow: `mlflow server --workers N` (SQLite; `--artifacts-destination s3://<bucket>/mlflow`, proxied), installed
  by this script in its own virtualenv with the uv the Makefile provides (`python3 -m uv` when `uv` is not on PATH).

Flows (each timed `--runs` times, medians reported; the search corpus is built once, untimed):
- log: `--log-runs` runs, each create_run + log_batch of 100 params + log_batch of 1,000 metric steps + end.
- search: search_runs over an experiment of `--search-runs` runs with a metric filter.
- register: create_registered_model + create_model_version (from a run's ONNX files) + set alias + resolve alias.
- S3: log_artifact / download_artifacts of a `--size-mb` file, with the Modelyard registry's peak RSS growth.

If MLflow cannot be set up or any of its calls fails, the script exits non-zero and writes nothing: a one-sided
table is not a comparison.

Usage: python bench/registry/mlflow_flows.py [--runs 3] [--size-mb 200] [--workers 4]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import boto3
import onnx
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from modelyard.kafka.embedded import free_port
from modelyard.registry.testing import moto_server
from modelyard.testing.models import train_models

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import PeakRss, process, wait_http

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venvs" / "mlflow-server"
MLFLOW = ["mlflow==3.17.*", "boto3>=1.35"]  # the newest server release resolvable from PyPI here
MB = 1024 * 1024
RSS_LIMIT_MB = 64
KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def uv() -> list[str]:
    """The uv the Makefile uses: on PATH, else the one installed for python3."""
    return ["uv"] if shutil.which("uv") else ["python3", "-m", "uv"]


def ensure_mlflow() -> Path:
    python, marker = VENV / "bin" / "python", VENV / ".installed"
    if not marker.exists():
        print("creating the MLflow server's virtualenv (first run only)", flush=True)
        command = uv()
        subprocess.run([*command, "venv", "-q", "--python", sys.executable, str(VENV)], check=True)
        subprocess.run([*command, "pip", "install", "-q", "--python", str(python), *MLFLOW], check=True)
        marker.touch()
    return VENV / "bin" / "mlflow"


@dataclass
class Result:
    flow: str
    seconds: dict[str, float]  # system -> median seconds
    unit: str  # what one timed iteration does
    rss_mb: float | None = None  # Modelyard registry's peak RSS growth


def median_time(runs: int, call: Callable[[int], None], setup: Callable[[int], None] | None = None) -> float:
    times = []
    for i in range(runs):
        if setup is not None:
            setup(i)
        start = time.perf_counter()
        call(i)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class Flows:
    """The same client calls for either system."""

    def __init__(self, system: str, base: str, args: argparse.Namespace, tmp: Path, pid: int) -> None:
        self.system, self.client, self.args, self.tmp, self.pid = system, MlflowClient(base, base), args, tmp, pid
        self.tag = f"{system.lower()}-{int(time.time())}"

    def log(self) -> float:
        experiment = self.client.create_experiment(f"log-{self.tag}")
        params = [Param(f"p{i}", str(i)) for i in range(100)]

        def once(_: int) -> None:
            for _ in range(self.args.log_runs):
                run = self.client.create_run(experiment)
                self.client.log_batch(run.info.run_id, params=params)
                now = int(time.time() * 1000)
                steps = [Metric("loss", 1.0 / (s + 1), now + s, s) for s in range(1000)]
                self.client.log_batch(run.info.run_id, metrics=steps)
                self.client.set_terminated(run.info.run_id)

        return median_time(self.args.runs, once)

    def search(self) -> float:
        experiment = self.client.create_experiment(f"search-{self.tag}")
        for i in range(self.args.search_runs):
            run = self.client.create_run(experiment)
            self.client.log_batch(run.info.run_id, metrics=[Metric("acc", (i % 100) / 100, 0, 0)])
        found = self.client.search_runs([experiment], "metrics.acc >= 0.5", max_results=self.args.search_runs)
        assert len(found) == self.args.search_runs // 2, f"{self.system}: search found {len(found)}"
        return median_time(
            self.args.runs * 2,
            lambda _: self.client.search_runs([experiment], "metrics.acc >= 0.5", max_results=self.args.search_runs),
        )

    def register(self) -> float:
        experiment = self.client.create_experiment(f"register-{self.tag}")
        run = self.client.create_run(experiment)
        model_dir = self.tmp / f"model-{self.system}"
        model_dir.mkdir()
        onnx.save(onnx.load_from_string(train_models()["iris"].onnx), model_dir / "model.onnx")
        (model_dir / "MLmodel").write_text("flavors:\n  onnx:\n    data: model.onnx\n")
        self.client.log_artifacts(run.info.run_id, str(model_dir), "model")
        source = f"{run.info.artifact_uri}/model"

        def once(i: int) -> None:
            for n in range(self.args.registrations):
                name = f"bench-{self.tag}-{i}-{n}"
                self.client.create_registered_model(name)
                version = self.client.create_model_version(name, source, run.info.run_id, await_creation_for=0)
                self.client.set_registered_model_alias(name, "champion", version.version)
                assert self.client.get_model_version_by_alias(name, "champion").version == version.version

        return median_time(self.args.runs, once)

    def s3(self, s3: object, bucket: str) -> tuple[float, float, float]:
        """Median upload and download seconds, and the largest registry RSS growth seen (Modelyard only)."""
        experiment = self.client.create_experiment(f"s3-{self.tag}")
        ups, downs, rss = [], [], 0.0
        for i in range(self.args.runs):
            run = self.client.create_run(experiment)
            data = self.tmp / f"data-{self.system}-{i}" / "data.bin"
            data.parent.mkdir()
            with data.open("wb") as out:  # distinct bytes every time: nothing deduplicated
                for _ in range(self.args.size_mb):
                    out.write(os.urandom(MB))
            watch = PeakRss(self.pid) if self.system == "Modelyard" else contextlib.nullcontext()
            with watch:
                start = time.perf_counter()
                self.client.log_artifact(run.info.run_id, str(data))
                ups.append(time.perf_counter() - start)
            rss = max(rss, getattr(watch, "growth_mb", 0.0))
            data.unlink()
            target = self.tmp / f"down-{self.system}-{i}"
            target.mkdir()
            watch = PeakRss(self.pid) if self.system == "Modelyard" else contextlib.nullcontext()
            with watch:
                start = time.perf_counter()
                got = Path(self.client.download_artifacts(run.info.run_id, "data.bin", str(target)))
                downs.append(time.perf_counter() - start)
            rss = max(rss, getattr(watch, "growth_mb", 0.0))
            assert got.stat().st_size == self.args.size_mb * MB
            shutil.rmtree(target)
            shutil.rmtree(data.parent)
            empty_bucket(s3, bucket)  # moto keeps objects in memory: start every run from an empty bucket
        return statistics.median(ups), statistics.median(downs), rss


def empty_bucket(s3: object, bucket: str) -> None:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)  # type: ignore[attr-defined]
    for page in pages:
        for item in page.get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=item["Key"])  # type: ignore[attr-defined]


@contextlib.contextmanager
def modelyard(tmp: Path, endpoint: str, bucket: str, size_mb: int) -> Iterator[tuple[str, int]]:
    http_port = free_port()
    env = {
        **os.environ,
        "MODELYARD_REGISTRY_DATA_DIR": str(tmp / "modelyard"),
        "MODELYARD_REGISTRY_GRPC_PORT": str(free_port()),
        "MODELYARD_REGISTRY_HTTP_PORT": str(http_port),
        "MODELYARD_REGISTRY_KAFKA_REQUIRED": "false",
        "MODELYARD_REGISTRY_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",  # no broker: events wait in the outbox
        "MODELYARD_REGISTRY_MAX_ARTIFACT_BYTES": str(2 * size_mb * MB),
        "MODELYARD_REGISTRY_ARTIFACTS_URL": f"s3://{bucket}/modelyard",
        "MODELYARD_REGISTRY_S3_ENDPOINT_URL": endpoint,
        "MODELYARD_REGISTRY_S3_ACCESS_KEY_ID": "testing",
        "MODELYARD_REGISTRY_S3_SECRET_ACCESS_KEY": "testing",
        "MODELYARD_REGISTRY_LOG_LEVEL": "ERROR",
    }
    with process([sys.executable, "-m", "modelyard.registry"], env, tmp / "modelyard.log") as server:
        base = f"http://127.0.0.1:{http_port}"
        wait_http(f"{base}/readyz", server, "modelyard registry")
        yield base, server.pid


@contextlib.contextmanager
def mlflow_server(tmp: Path, endpoint: str, bucket: str, workers: int) -> Iterator[tuple[str, int]]:
    mlflow = ensure_mlflow()
    port = free_port()
    command = [
        str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}", "--artifacts-destination", f"s3://{bucket}/mlflow",
        "--serve-artifacts",
        # uvicorn kills a worker that misses a 5 s health check: on a loaded machine they died in a loop.
        "--uvicorn-opts", "--timeout-worker-healthcheck 120",
    ]  # fmt: skip
    env = {**os.environ, **KEYS, "MLFLOW_S3_ENDPOINT_URL": endpoint}
    with process(command, env, tmp / "mlflow.log") as server:
        base = f"http://127.0.0.1:{port}"
        # Its workers import MLflow side by side: minutes on a loaded 2-core machine.
        wait_http(f"{base}/health", server, "mlflow server", timeout_s=900)
        yield base, server.pid


def bench(
    system: str, base: str, pid: int, args: argparse.Namespace, tmp: Path, s3: object, bucket: str
) -> dict[str, tuple[float, ...]]:
    flows = Flows(system, base, args, tmp, pid)
    results: dict[str, tuple[float, ...]] = {}
    for name, call in (("log", flows.log), ("search", flows.search), ("register", flows.register)):
        results[name] = (call(),)
        print(f"  {system} {name}: {results[name][0]:.3f} s", flush=True)
    results["s3"] = flows.s3(s3, bucket)
    print(f"  {system} s3: up {results['s3'][0]:.2f} s, down {results['s3'][1]:.2f} s", flush=True)
    return results


def commit() -> str:
    found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE)
    dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, cwd=HERE).stdout.strip()
    return found.stdout.strip() + (" (uncommitted changes)" if dirty else "")


def report(args: argparse.Namespace, mine: dict[str, tuple[float, ...]], peer: dict[str, tuple[float, ...]]) -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    size = args.size_mb
    rows = [
        ("log", f"{args.log_runs} runs x (100 params + 1,000 metric steps, log_batch)", 0),
        ("search", f"search_runs over {args.search_runs} runs (metric filter)", 0),
        ("register", f"{args.registrations} x (create model + version + set alias + resolve alias)", 0),
        ("s3", f"log_artifact {size} MB (to S3)", 0),
        ("s3", f"download_artifacts {size} MB (from S3)", 1),
    ]
    lines = [
        "# MLflow-client flows: Modelyard registry vs MLflow server",
        "",
        f"Commit {commit()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {load}, {os.cpu_count()} CPUs.",
        f"Same MlflowClient calls (mlflow-skinny client from the dev dependencies) against: Modelyard registry (1 "
        f"process, SQLite, artifacts on S3) and MLflow server {MLFLOW[0]} (`--workers {args.workers}`, SQLite, "
        "S3 artifacts proxied by `--serve-artifacts`); both on one moto S3 server. Median of "
        f"{args.runs} runs (search: {2 * args.runs}); written by bench/registry/mlflow_flows.py.",
        "",
        "| flow | Modelyard | MLflow | Modelyard / MLflow throughput |",
        "|---|---|---|---|",
    ]
    for key, label, index in rows:
        ours, theirs = mine[key][index], peer[key][index]
        if key == "s3":
            cells = f"{size / ours:.0f} MB/s | {size / theirs:.0f} MB/s"
        else:
            cells = f"{ours:.3f} s | {theirs:.3f} s"
        lines.append(f"| {label} | {cells} | {theirs / ours:.2f} |")
    rss = mine["s3"][2]
    verdict = "under" if rss < RSS_LIMIT_MB else "OVER"
    lines += ["", f"Modelyard registry peak RSS growth during the {size} MB S3 transfers: {rss:.1f} MB ({verdict} "
              f"the {RSS_LIMIT_MB} MB budget)."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--log-runs", type=int, default=10)
    parser.add_argument("--search-runs", type=int, default=1000)
    parser.add_argument("--registrations", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "MLFLOW.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-mlflow-") as raw, moto_server() as endpoint:
        tmp = Path(raw)
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")  # fmt: skip
        bucket = "bench-artifacts"
        s3.create_bucket(Bucket=bucket)
        print("benchmarking the Modelyard registry", flush=True)
        with modelyard(tmp, endpoint, bucket, args.size_mb) as (base, pid):
            mine = bench("Modelyard", base, pid, args, tmp, s3, bucket)
        print(f"benchmarking MLflow's server ({args.workers} workers)", flush=True)
        try:
            with mlflow_server(tmp, endpoint, bucket, args.workers) as (base, pid):
                peer = bench("MLflow", base, pid, args, tmp, s3, bucket)
        except Exception as exc:
            print(f"MLflow failed, no table written: {type(exc).__name__}: {exc}", file=sys.stderr)
            sys.exit(1)
    text = report(args, mine, peer)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
