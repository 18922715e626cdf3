"""Registry benchmark: artifact throughput with the server's memory growth, and read latency under concurrency.

One run, same machine, same artifact files and the same load generators for every system compared:
- Modelyard registry (a `python -m modelyard.registry` process, SQLite, embedded broker for its outbox relay):
  upload and download of a `--size-mb` artifact over gRPC (client / server streaming) and over REST, with the
  server's peak RSS growth during each transfer (VmHWM after the transfer minus VmRSS before it, the high-water
  mark reset through /proc/<pid>/clear_refs); then GetModelVersion and ResolveAlias latency from `--clients`
  concurrent clients over gRPC, and the same two reads over REST.
- MLflow's registry (`mlflow server`, SQLite, `--serve-artifacts`), installed in its own virtualenv on first use:
  the same artifact through its artifact proxy, and model-versions/get and registered-models/alias over REST
  with the same HTTP load generator. Skipped with a notice when it cannot be set up (`--no-mlflow` to skip).

The artifact is a CSV reference dataset (what ingestion streams through; an ONNX model of that size would be
parsed whole by onnx and onnxruntime). Every point runs `--runs` times; the table shows medians.

Usage: uv run python bench/registry/run.py [--size-mb 200] [--runs 3] [--clients 16] [--requests 100]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx

from modelyard.contracts.registry.v1 import registry_service_pb2 as pb
from modelyard.contracts.registry.v1 import registry_service_pb2_grpc as pb_grpc
from modelyard.kafka.embedded import EmbeddedBroker, free_port
from modelyard.testing.models import train_models

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venvs" / "mlflow"
MLFLOW = ["mlflow==3.17.*"]
CHUNK = 1024 * 1024
MB = 1024 * 1024
RSS_LIMIT_MB = 64
START_TIMEOUT_S = 180.0


@dataclass
class Row:
    system: str
    operation: str
    value: str
    rss_mb: float | None = None  # peak RSS growth of the server during the operation

    @property
    def note(self) -> str:
        return "" if self.rss_mb is None else f"server peak RSS +{self.rss_mb:.1f} MB"


# --- processes ------------------------------------------------------------------------------------------------


def wait_http(url: str, process: subprocess.Popen[bytes], what: str, timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready within {timeout_s:.0f}s")


@contextlib.contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield proc
        finally:
            # The whole session: MLflow's server runs workers and job consumers as children.
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def tree(pid: int) -> list[int]:
    """The process and its descendants (MLflow serves from worker children), found through each /proc/<pid>/stat's
    parent field (/proc/<pid>/task/<tid>/children needs a kernel option this machine may lack)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        queue.extend(parents.get(current, []))
    return found


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class PeakRss:
    """Peak RSS growth of a process tree during a block: VmHWM after minus VmRSS before, per process."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.growth_mb = 0.0

    def __enter__(self) -> PeakRss:
        self._pids = tree(self.pid)
        for pid in self._pids:
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        self._before = {pid: _status_kb(pid, "VmRSS") for pid in self._pids}
        return self

    def __exit__(self, *exc: object) -> None:
        growth = sum(max(0, _status_kb(pid, "VmHWM") - self._before[pid]) for pid in self._pids)
        self.growth_mb = growth / 1024


# --- artifacts ------------------------------------------------------------------------------------------------


def make_csv(path: Path, size_mb: int, seed: int) -> str:
    """A CSV of about `size_mb` MiB of numbers, unique per seed (the header names it) so that no upload is
    deduplicated; its digest. One block of rows is formatted once and written repeatedly: fast to make."""
    rows = [
        ",".join(f"{((row * 7919 + i * 104729) % 100000) / 1000:.3f}" for i in range(15)) + f",{row % 2}\n"
        for row in range(10_000)
    ]
    block = "".join(rows).encode()
    header = ("".join(f"f{i}_{seed}," for i in range(15)) + "target\n").encode()
    hasher = hashlib.sha256(header)
    with path.open("wb") as out:
        out.write(header)
        for _ in range(max(1, size_mb * MB // len(block))):
            out.write(block)
            hasher.update(block)
    return "sha256:" + hasher.hexdigest()


def mbps(size: int, seconds: float) -> float:
    return size / MB / seconds


# --- Modelyard ------------------------------------------------------------------------------------------------


def grpc_upload(stub: pb_grpc.RegistryServiceStub, path: Path, digest: str) -> None:
    def requests() -> Iterator[pb.UploadArtifactRequest]:
        header = pb.UploadArtifactRequest.Header(media_type="text/csv", digest=digest, size_bytes=path.stat().st_size)
        yield pb.UploadArtifactRequest(header=header)
        with path.open("rb") as file:
            while chunk := file.read(CHUNK):
                yield pb.UploadArtifactRequest(chunk=chunk)

    stub.UploadArtifact(requests())


def grpc_download(stub: pb_grpc.RegistryServiceStub, digest: str) -> int:
    return sum(len(r.chunk) for r in stub.DownloadArtifact(pb.DownloadArtifactRequest(digest=digest)))


def http_upload(client: httpx.Client, url: str, path: Path, headers: dict[str, str]) -> None:
    def body() -> Iterator[bytes]:
        with path.open("rb") as file:
            while chunk := file.read(CHUNK):
                yield chunk

    response = client.request("PUT" if "mlflow" in url else "POST", url, content=body(), headers=headers)
    response.raise_for_status()


def http_download(client: httpx.Client, url: str) -> int:
    size = 0
    with client.stream("GET", url) as response:
        response.raise_for_status()
        for chunk in response.iter_bytes(CHUNK):
            size += len(chunk)
    return size


def transfer(
    system: str, transport: str, pid: int, runs: list[tuple[Path, str]], up: Callable[[Path, str], None],
    down: Callable[[str], int],
) -> list[Row]:  # fmt: skip
    up_rates, down_rates, up_rss, down_rss = [], [], [], []
    for path, digest in runs:
        size = path.stat().st_size
        with PeakRss(pid) as rss:
            start = time.perf_counter()
            up(path, digest)
            up_rates.append(mbps(size, time.perf_counter() - start))
        up_rss.append(rss.growth_mb)
        with PeakRss(pid) as rss:
            start = time.perf_counter()
            assert down(digest) == size
            down_rates.append(mbps(size, time.perf_counter() - start))
        down_rss.append(rss.growth_mb)
    size_mb = runs[0][0].stat().st_size / MB
    return [
        Row(system, f"upload {size_mb:.0f} MB ({transport})", f"{statistics.median(up_rates):.0f} MB/s",
            max(up_rss)),
        Row(system, f"download {size_mb:.0f} MB ({transport})", f"{statistics.median(down_rates):.0f} MB/s",
            max(down_rss)),
    ]  # fmt: skip


def latency_rows(system: str, operation: str, samples: list[list[float]]) -> Row:
    """Median across runs of each run's p50 and p99 (ms)."""
    p50 = statistics.median(statistics.quantiles(s, n=100)[49] for s in samples) * 1000
    p99 = statistics.median(statistics.quantiles(s, n=100)[98] for s in samples) * 1000
    return Row(system, operation, f"p50 {p50:.2f} ms, p99 {p99:.2f} ms")


async def load(clients: int, requests: int, call: Callable[[int], Awaitable[None]]) -> list[float]:
    """`clients` concurrent loops, each making `requests` calls; every call's latency in seconds."""
    latencies: list[float] = []

    async def client(index: int) -> None:
        for _ in range(requests):
            start = time.perf_counter()
            await call(index)
            latencies.append(time.perf_counter() - start)

    await asyncio.gather(*(client(i) for i in range(clients)))
    return latencies


async def grpc_latency(address: str, clients: int, requests: int, name: str) -> dict[str, list[float]]:
    channels = [grpc.aio.insecure_channel(address) for _ in range(clients)]
    stubs = [pb_grpc.RegistryServiceStub(c) for c in channels]
    get = pb.GetModelVersionRequest(model_name=name, version=1)
    resolve = pb.ResolveAliasRequest(model_name=name, alias="production")

    async def get_version(i: int) -> None:
        await stubs[i].GetModelVersion(get)

    async def resolve_alias(i: int) -> None:
        await stubs[i].ResolveAlias(resolve)

    try:
        await load(clients, 5, get_version)  # warm up connections
        return {
            "GetModelVersion": await load(clients, requests, get_version),
            "ResolveAlias": await load(clients, requests, resolve_alias),
        }
    finally:
        for channel in channels:
            await channel.close()


async def http_latency(base: str, clients: int, requests: int, paths: dict[str, str]) -> dict[str, list[float]]:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        def caller(path: str) -> Callable[[int], Awaitable[None]]:
            async def call(_: int) -> None:
                try:
                    response = await client.get(path)
                except (httpx.ReadError, httpx.RemoteProtocolError):
                    # The server closed an idle keep-alive connection as we reused it (uvicorn's 5 s timeout, on
                    # a loaded machine): send again, as a browser would. The retry's time counts.
                    response = await client.get(path)
                response.raise_for_status()

            return call

        await load(clients, 5, caller(next(iter(paths.values()))))
        return {operation: await load(clients, requests, caller(path)) for operation, path in paths.items()}


def bench_modelyard(args: argparse.Namespace, tmp: Path, files: list[tuple[Path, str]]) -> list[Row]:
    grpc_port, http_port = free_port(), free_port()
    with EmbeddedBroker() as broker:
        env = {
            **os.environ,
            "MODELYARD_REGISTRY_DATA_DIR": str(tmp / "modelyard"),
            "MODELYARD_REGISTRY_GRPC_PORT": str(grpc_port),
            "MODELYARD_REGISTRY_HTTP_PORT": str(http_port),
            "MODELYARD_REGISTRY_KAFKA_BOOTSTRAP": broker.bootstrap,
            "MODELYARD_REGISTRY_MAX_ARTIFACT_BYTES": str(2 * args.size_mb * MB),
            "MODELYARD_REGISTRY_LOG_LEVEL": "WARNING",
        }
        command = [sys.executable, "-m", "modelyard.registry"]
        with process(command, env, tmp / "modelyard.log") as server:
            base = f"http://127.0.0.1:{http_port}"
            wait_http(f"{base}/readyz", server, "modelyard registry")
            address = f"127.0.0.1:{grpc_port}"
            rows: list[Row] = []
            grpc_files, rest_files = files[: args.runs], files[args.runs :]
            with grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 8 * MB)]) as channel:
                stub = pb_grpc.RegistryServiceStub(channel)
                rows += transfer(
                    "Modelyard", "gRPC", server.pid, grpc_files,
                    lambda path, digest: grpc_upload(stub, path, digest), lambda digest: grpc_download(stub, digest),
                )  # fmt: skip
                with httpx.Client(base_url=base, timeout=600) as client:
                    rows += transfer(
                        "Modelyard", "REST", server.pid, rest_files,
                        lambda path, digest: http_upload(
                            client, f"/v1/artifacts?digest={digest}", path, {"content-type": "text/csv"}
                        ),
                        lambda digest: http_download(client, f"/v1/artifacts/{digest}"),
                    )  # fmt: skip
                    name = register_modelyard(stub, client)
            samples: dict[str, list[list[float]]] = {}
            rest: dict[str, list[list[float]]] = {}
            for _ in range(args.runs):
                for op, lat in asyncio.run(grpc_latency(address, args.clients, args.requests, name)).items():
                    samples.setdefault(op, []).append(lat)
                paths = {
                    "GetModelVersion": f"/v1/models/{name}/versions/1",
                    "ResolveAlias": f"/v1/models/{name}/aliases/production",
                }
                for op, lat in asyncio.run(http_latency(base, args.clients, args.requests, paths)).items():
                    rest.setdefault(op, []).append(lat)
            rows += [latency_rows("Modelyard", f"{op} (gRPC, {args.clients} clients)", s) for op, s in samples.items()]
            rows += [latency_rows("Modelyard", f"{op} (REST, {args.clients} clients)", s) for op, s in rest.items()]
            return rows


def register_modelyard(stub: pb_grpc.RegistryServiceStub, client: httpx.Client) -> str:
    model = train_models()["iris"]
    name = "bench-iris"
    client.post("/v1/models", json={"name": name}).raise_for_status()
    response = client.post(
        f"/v1/artifacts?digest={model.digest}", content=model.onnx, headers={"content-type": "application/onnx"}
    )
    response.raise_for_status()
    client.post(f"/v1/models/{name}/versions", json={"artifact_digest": model.digest}).raise_for_status()
    deadline = time.monotonic() + 30
    while client.get(f"/v1/models/{name}/versions/1").json()["status"] != "MODEL_VERSION_STATUS_READY":
        if time.monotonic() > deadline:
            raise RuntimeError("benchmark model never became READY")
        time.sleep(0.05)
    client.put(f"/v1/models/{name}/aliases/production", json={"version": 1}).raise_for_status()
    return name


# --- MLflow ---------------------------------------------------------------------------------------------------


def ensure_mlflow() -> Path:
    python = VENV / "bin" / "python"
    marker = VENV / ".installed"
    if not marker.exists():
        print("creating the MLflow virtualenv (first run only)", flush=True)
        # The interpreter behind uv's environment: the same Python for both systems.
        subprocess.run(["uv", "venv", "-q", "--python", sys.executable, str(VENV)], check=True)
        subprocess.run(["uv", "pip", "install", "-q", "--python", str(python), *MLFLOW], check=True)
        marker.touch()
    return VENV / "bin" / "mlflow"


def bench_mlflow(args: argparse.Namespace, tmp: Path, files: list[tuple[Path, str]]) -> list[Row]:
    mlflow = ensure_mlflow()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [
        str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}", "--artifacts-destination", str(tmp / "mlartifacts"),
        "--serve-artifacts",
    ]  # fmt: skip
    with process(command, dict(os.environ), tmp / "mlflow.log") as server:
        wait_http(f"{base}/health", server, "mlflow server")
        rows: list[Row] = []
        api = "/api/2.0/mlflow"
        with httpx.Client(base_url=base, timeout=600) as client:
            rows += transfer(
                "MLflow", "REST", server.pid, files[: args.runs],
                lambda path, digest: http_upload(
                    client, f"{api}-artifacts/artifacts/bench/{digest[7:]}.csv", path,
                    {"content-type": "application/octet-stream"},
                ),
                lambda digest: http_download(client, f"{api}-artifacts/artifacts/bench/{digest[7:]}.csv"),
            )  # fmt: skip
            # MLflow registers a version from a run's artifacts: make the run, log the model file there.
            model = train_models()["iris"]
            run = client.post(f"{api}/runs/create", json={"experiment_id": "0"}).raise_for_status().json()["run"]
            run_id, artifact_uri = run["info"]["run_id"], run["info"]["artifact_uri"]
            model_path = f"{api}-artifacts/artifacts/0/{run_id}/artifacts/model/model.onnx"
            client.put(model_path, content=model.onnx).raise_for_status()
            name = "bench-iris"
            client.post(f"{api}/registered-models/create", json={"name": name}).raise_for_status()
            version = {"name": name, "source": f"{artifact_uri}/model", "run_id": run_id}
            client.post(f"{api}/model-versions/create", json=version).raise_for_status()
            client.post(
                f"{api}/registered-models/alias", json={"name": name, "alias": "production", "version": "1"}
            ).raise_for_status()
        paths = {
            "GetModelVersion": f"{api}/model-versions/get?name={name}&version=1",
            "ResolveAlias": f"{api}/registered-models/alias?name={name}&alias=production",
        }
        samples: dict[str, list[list[float]]] = {}
        for _ in range(args.runs):
            for op, lat in asyncio.run(http_latency(base, args.clients, args.requests, paths)).items():
                samples.setdefault(op, []).append(lat)
        rows += [latency_rows("MLflow", f"{op} (REST, {args.clients} clients)", s) for op, s in samples.items()]
        return rows


# --- report ---------------------------------------------------------------------------------------------------


def table(rows: list[Row], args: argparse.Namespace, notes: list[str]) -> str:
    lines = [
        f"# Registry benchmark ({args.size_mb} MB artifact, {args.clients} concurrent clients, {args.requests} "
        f"requests each, median of {args.runs} runs)",
        "",
        "| system | operation | result | notes |",
        "|---|---|---|---|",
        *(f"| {r.system} | {r.operation} | {r.value} | {r.note} |" for r in rows),
    ]
    by_key = {(r.system, r.operation.replace("(gRPC", "(REST")): r for r in rows}
    ratios = []
    for (system, operation), row in by_key.items():
        peer = by_key.get(("MLflow", operation))
        if system == "Modelyard" and peer is not None and "MB/s" in row.value:
            ratio = float(row.value.split()[0]) / float(peer.value.split()[0])
            ratios.append(f"- {operation}: Modelyard / MLflow = {ratio:.2f}")
    if ratios:
        lines += ["", "Throughput ratios (same HTTP client, same files):", *ratios]
    lines += ["", *notes] if notes else []
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=100, help="requests per client per operation and run")
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-registry-") as raw:
        tmp = Path(raw)
        print(f"writing {2 * args.runs} distinct {args.size_mb} MB CSV files", flush=True)
        files = [(tmp / f"data-{i}.csv", "") for i in range(2 * args.runs)]
        files = [(path, make_csv(path, args.size_mb, seed)) for seed, (path, _) in enumerate(files)]
        print("benchmarking the Modelyard registry", flush=True)
        rows = bench_modelyard(args, tmp, files)
        for row in rows:
            print(f"  {row.system}: {row.operation}: {row.value} {row.note}", flush=True)
        over = [
            r.operation for r in rows if "RSS +" in r.note and float(r.note.split("+")[1].split()[0]) >= RSS_LIMIT_MB
        ]
        notes.append(
            f"Modelyard server peak RSS growth over the {RSS_LIMIT_MB} MB budget: {', '.join(over)}."
            if over
            else f"Modelyard server peak RSS growth stays under the {RSS_LIMIT_MB} MB budget for every transfer."
        )
        if not args.no_mlflow:
            print("benchmarking MLflow's registry", flush=True)
            try:
                mlflow_rows = bench_mlflow(args, tmp, files)
                for row in mlflow_rows:
                    print(f"  {row.system}: {row.operation}: {row.value} {row.note}", flush=True)
                rows += mlflow_rows
            except (OSError, RuntimeError, subprocess.CalledProcessError, httpx.HTTPError) as exc:
                notes.append(f"MLflow not run: {exc}")
    report = table(rows, args, notes)
    args.out.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
