"""Serving benchmark: one run, same model files, same load generator, for every system compared.

Systems: onnxruntime `session.run` in process (the physical limit), a bare grpc.aio + onnxruntime server (the
floor to beat), Modelyard serving with the prediction stream on (embedded broker), MLServer 1.7 with a small
ONNX runtime class, and Triton 2.51 through PyTriton 0.7 with its dynamic batcher. Peers run from their own
virtualenvs, created here on first use. Load: h2load replaying a pre-framed ModelInferRequest (one row), after
a sample response was checked for an OK status (h2load does not read gRPC status). Every point runs `--runs`
times; the table reports medians and ratios to the bare floor.

Usage: uv run python bench/serving/run.py [--duration 5] [--runs 3] [--systems ...] [--out bench/serving/RESULTS.md]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
import httpx
import numpy as np
import onnxruntime as ort
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from modelyard.contracts.inference import grpc_service_pb2 as pb
from modelyard.contracts.inference import grpc_service_pb2_grpc as pb_grpc

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from report import UV, git_commit, load_average, package_versions  # noqa: E402  (bench/report.py)

VENVS = HERE / ".venvs"
PEERS = {
    "mlserver": ["mlserver==1.7.*", "onnxruntime", "numpy", "uvloop<0.22"],
    "pytriton": ["nvidia-pytriton==0.7.*", "onnxruntime", "numpy"],
}
# in flight -> (h2load connections, streams per connection). 32 in flight as 16 clients of 2 streams: servers with
# several processes on one port (SO_REUSEPORT) get the connections spread by the kernel; 4 connections often split
# 3/1 between two processes, which measured the split, not the server.
LOADS = {1: (1, 1), 32: (16, 2)}
METHOD = "/inference.GRPCInferenceService/ModelInfer"


@dataclass(frozen=True)
class Server:
    """A system under test: its gRPC port per model, how it is configured, and where its error counter is."""

    ports: dict[str, int]
    config: str
    metrics_url: str | None = None  # Prometheus text exposition
    error_metric: str = ""  # summed over its samples ...
    error_filter: Callable[[dict[str, str]], bool] = lambda labels: True  # ... whose labels pass this


@dataclass(frozen=True)
class Point:
    system: str
    model: str
    in_flight: int
    rps: float
    p50_us: float
    p99_us: float


# --- setup --------------------------------------------------------------------------------------------------


def ensure_h2load() -> str:
    found = shutil.which("h2load")
    if found:
        return found
    print("installing h2load (Debian nghttp2-client)", flush=True)
    apt = ["sudo"] if os.geteuid() != 0 else []
    subprocess.run([*apt, "apt-get", "update", "-qq"], check=True)
    subprocess.run([*apt, "apt-get", "install", "-y", "-qq", "nghttp2-client"], check=True)
    return shutil.which("h2load") or sys.exit("h2load still missing after installing nghttp2-client")


def ensure_venv(name: str) -> Path:
    python = VENVS / name / "bin" / "python"
    marker = VENVS / name / ".installed"
    if not marker.exists():
        print(f"creating the {name} virtualenv", flush=True)
        # The interpreter behind uv's environment: the same Python for every system compared.
        interpreter = str(Path(sys.base_prefix) / "bin" / "python3")
        subprocess.run([*UV, "venv", "-q", "--python", interpreter, str(VENVS / name)], check=True)
        subprocess.run([*UV, "pip", "install", "-q", "--python", str(python), *PEERS[name]], check=True)
        marker.touch()
    return python


def heavy_model() -> bytes:
    """An MLP with about 1.1M parameters (30*1024 + 1024*1024 + 1024*2) on breast cancer, as ONNX."""
    import warnings

    from skl2onnx import to_onnx
    from sklearn.datasets import load_breast_cancer
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load_breast_cancer(return_X_y=True)
    x = x.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = make_pipeline(StandardScaler(), MLPClassifier((1024, 1024), max_iter=3, random_state=0)).fit(x, y)
    onnx = to_onnx(model, x[:1], options={"zipmap": False}, target_opset={"": 17, "ai.onnx.ml": 3})
    onnx.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    return bytes(onnx.SerializeToString())


def tiny_model() -> bytes:
    from modelyard.testing.models import train_models

    return train_models()["breast-cancer"].onnx


def request_body(model: str, row: np.ndarray) -> bytes:
    request = pb.ModelInferRequest(model_name=model, id="bench")
    request.inputs.add(name="X", datatype="FP32", shape=[1, row.shape[-1]])
    request.raw_input_contents.append(row.astype(np.float32).tobytes())
    return request.SerializeToString()


def grpc_frame(body: bytes) -> bytes:
    return b"\0" + struct.pack(">I", len(body)) + body


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- measuring ----------------------------------------------------------------------------------------------


def check_sample(port: int, model: str, body: bytes) -> None:
    """Wait until the model is ready, then require an OK answer with outputs to the exact benchmark request."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        deadline = time.monotonic() + 180
        while True:
            with contextlib.suppress(grpc.RpcError):
                if stub.ModelReady(pb.ModelReadyRequest(name=model), timeout=2).ready:
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"model {model} not ready on port {port}")
            time.sleep(0.5)
        call = channel.unary_unary(METHOD)
        response = pb.ModelInferResponse.FromString(call(body, timeout=10))  # raises unless the status is OK
        if not response.outputs:
            raise SystemExit(f"{model} on port {port} answered without outputs")


def wait_ready(url: str, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} not ready within {timeout_s:g}s")
        time.sleep(0.5)


def h2load(
    binary: str, port: int, frame: Path, in_flight: int, duration_s: float, log: Path
) -> tuple[float, list[int]]:
    connections, streams = LOADS[in_flight]
    log.unlink(missing_ok=True)  # h2load appends to an existing log
    command = [
        binary, f"-D{duration_s:g}", "--warm-up-time=1", f"-c{connections}", f"-m{streams}",
        "-H", "content-type: application/grpc", "-H", "te: trailers", "-d", str(frame),
        f"--log-file={log}", f"http://127.0.0.1:{port}{METHOD}",
    ]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, timeout=duration_s + 60, check=True).stdout
    rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", output).group(1))  # type: ignore[union-attr]
    failed = re.search(r"(\d+) failed, (\d+) errored", output)
    if failed and (int(failed.group(1)) or int(failed.group(2))):
        raise SystemExit(f"h2load saw failures on port {port}: {failed.group(0)}")
    latencies = [float(line.split("\t")[2]) for line in log.read_text().splitlines() if line.split("\t")[1] == "200"]
    return rps, latencies


def samples(url: str) -> list[Sample]:
    text = httpx.get(url, timeout=10).raise_for_status().text
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def server_errors(server: Server) -> float | None:
    """The server's own count of failed inferences (None: it exposes none)."""
    if server.metrics_url is None:
        return None
    wanted = server.error_metric
    return sum(s.value for s in samples(server.metrics_url) if s.name == wanted and server.error_filter(s.labels))


def batching(server: Server) -> str:
    """Modelyard's dynamic batching over the whole run, per model: how many runs and requests per run."""
    assert server.metrics_url is not None
    found = {(s.name, s.labels.get("model")): s.value for s in samples(server.metrics_url)}
    parts = []
    for model in server.ports:
        runs = found.get(("modelyard_serving_batch_size_count", model), 0.0)
        total = found.get(("modelyard_serving_batch_size_sum", model), 0.0)
        parts.append(f"{model}: {total / runs:.1f} requests per run ({runs:,.0f} runs)" if runs else f"{model}: off")
    return "; ".join(parts)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


def summarize(system: str, model: str, in_flight: int, runs: Sequence[tuple[float, Sequence[float]]]) -> Point:
    """Medians over runs of throughput and of each run's p50 and p99."""
    return Point(
        system,
        model,
        in_flight,
        statistics.median(rps for rps, _ in runs),
        statistics.median(percentile(latencies, 0.5) for _, latencies in runs),
        statistics.median(percentile(latencies, 0.99) for _, latencies in runs),
    )


def in_process(path: Path, row: np.ndarray, duration_s: float) -> tuple[float, list[float]]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {"X": row.reshape(1, -1).astype(np.float32)}
    for _ in range(200):
        session.run(None, feed)
    latencies: list[float] = []
    began = time.perf_counter()
    while (now := time.perf_counter()) - began < duration_s and len(latencies) < 2_000_000:
        session.run(None, feed)
        latencies.append((time.perf_counter() - now) * 1e6)
    return len(latencies) / (time.perf_counter() - began), latencies


# --- systems ------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def process(command: list[str], env: dict[str, str] | None = None, log: Path | None = None) -> Iterator[None]:
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115
    # In the bench's temporary directory: what a server leaves in its working directory (MLServer's metrics
    # files) stays out of the work tree.
    cwd = log.parent if log else None
    proc = subprocess.Popen(command, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
    try:
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log:
            out.close()  # type: ignore[union-attr]


@contextlib.contextmanager
def bare(work: Path, models: dict[str, Path]) -> Iterator[dict[str, int]]:
    ports = {name: free_port() for name in models}
    with contextlib.ExitStack() as stack:
        for name, path in models.items():
            stack.enter_context(
                process([sys.executable, str(HERE / "bare_server.py"), str(path), str(ports[name])],
                        log=work / f"bare-{name}.log")
            )  # fmt: skip
        yield Server(ports, f"1 process, {package_versions(sys.executable, 'grpcio', 'onnxruntime')}")


@contextlib.contextmanager
def modelyard(work: Path, models: dict[str, Path]) -> Iterator[dict[str, int]]:
    import asyncio
    import hashlib
    import json

    from modelyard.kafka.admin import ensure_topics
    from modelyard.kafka.embedded import EmbeddedBroker
    from modelyard.serving.config import usable_cores

    repository = work / "modelyard"
    plans = []
    for name, path in models.items():
        target = repository / "models" / name / "1" / "model.onnx"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
        digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
        plans.append(
            {"modelName": name, "revision": "1", "primary": {"modelName": name, "version": "1", "digest": digest}}
        )
    (repository / "plans.json").write_text(json.dumps({"plans": plans}))
    port, http_port = free_port(), free_port()
    with EmbeddedBroker() as broker:
        asyncio.run(ensure_topics(broker.bootstrap))
        env = {
            "MODELYARD_SERVING_GRPC_PORT": str(port),
            "MODELYARD_SERVING_HTTP_PORT": str(http_port),
            "MODELYARD_SERVING_DATA_DIR": str(repository),
            "MODELYARD_SERVING_PLAN_FILE": str(repository / "plans.json"),
            "MODELYARD_SERVING_MODEL_DIR": str(repository / "models"),
            "MODELYARD_SERVING_KAFKA_BOOTSTRAP": broker.bootstrap,
            "MODELYARD_SERVING_STREAM_INTERVAL_S": os.environ.get("MODELYARD_SERVING_STREAM_INTERVAL_S", "0.05"),
            "MODELYARD_SERVING_STREAM_ENABLED": os.environ.get("MODELYARD_SERVING_STREAM_ENABLED", "true"),
            "MODELYARD_SERVING_LOG_LEVEL": "WARNING",
            # Serving's default (the cores this process may use) unless the caller's environment sets it, stated
            # in the report's header either way.
            "MODELYARD_SERVING_WORKERS": os.environ.get("MODELYARD_SERVING_WORKERS") or str(usable_cores()),
        }
        with process([sys.executable, "-m", "modelyard.serving"], env, work / "modelyard.log"):
            # Ready only when every worker is: a sample answer comes from one worker, which says nothing of the rest.
            wait_ready(f"http://127.0.0.1:{http_port}/readyz")
            yield Server(
                dict.fromkeys(models, port),
                f"{env['MODELYARD_SERVING_WORKERS']} worker processes (serving.workers; its default, the usable "
                f"cores, is {usable_cores()} here), serving's default batching, prediction stream on (embedded "
                f"broker), {package_versions(sys.executable, 'grpcio', 'onnxruntime')}",
                f"http://127.0.0.1:{http_port}/metrics",
                "modelyard_serving_requests_total",
                lambda labels: labels.get("code") != "OK",
            )


@contextlib.contextmanager
def mlserver(work: Path, models: dict[str, Path]) -> Iterator[dict[str, int]]:
    import json

    python = ensure_venv("mlserver")
    root = work / "mlserver"
    root.mkdir(exist_ok=True)
    shutil.copy(HERE / "mlserver_runtime.py", root / "onnx_runtime.py")
    port = free_port()
    settings = {"grpc_port": port, "http_port": free_port(), "metrics_port": free_port(), "host": "127.0.0.1"}
    (root / "settings.json").write_text(json.dumps(settings))
    for name, path in models.items():
        (root / name).mkdir(exist_ok=True)
        shutil.copy(path, root / name / "model.onnx")
        model_settings = {"name": name, "implementation": "onnx_runtime.OnnxRuntime",
                          "parameters": {"uri": str(root / name / "model.onnx")}}  # fmt: skip
        (root / name / "model-settings.json").write_text(json.dumps(model_settings))
    mlserver_bin = str(python.parent / "mlserver")
    with process([mlserver_bin, "start", str(root)], {"PYTHONPATH": str(root)}, work / "mlserver.log"):
        yield Server(
            dict.fromkeys(models, port),
            f"MLServer's default settings (parallel workers, no adaptive batching), "
            f"{package_versions(str(python), 'mlserver', 'onnxruntime')}",
        )


@contextlib.contextmanager
def pytriton(work: Path, models: dict[str, Path]) -> Iterator[dict[str, int]]:
    python = ensure_venv("pytriton")
    port = free_port()
    # The bundled tritonserver links libpython of the interpreter it runs under.
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    env = {"LD_LIBRARY_PATH": ":".join(p for p in (libdir, os.environ.get("LD_LIBRARY_PATH", "")) if p)}
    metrics_port = free_port()
    command = [str(python), str(HERE / "pytriton_server.py"), str(port), str(free_port()), str(metrics_port)]
    command += [f"{name}={path}" for name, path in models.items()]
    with process(command, env, work / "pytriton.log"):
        yield Server(
            dict.fromkeys(models, port),
            f"Triton's dynamic batcher (max batch 64, max queue delay 100 µs), "
            f"{package_versions(str(python), 'nvidia-pytriton', 'onnxruntime')}",
            f"http://127.0.0.1:{metrics_port}/metrics",
            "nv_inference_request_failure",
        )


SERVERS: dict[str, Callable[[Path, dict[str, Path]], contextlib.AbstractContextManager[Server]]] = {
    "bare grpc.aio": bare,
    "modelyard (stream on)": modelyard,
    "mlserver 1.7": mlserver,
    "pytriton 0.7": pytriton,
}
IN_PROCESS = "onnxruntime in process"
MODELYARD = "modelyard (stream on)"
SYSTEM_KEYS = {"raw": IN_PROCESS, "bare": "bare grpc.aio", "modelyard": "modelyard (stream on)",
               "mlserver": "mlserver 1.7", "pytriton": "pytriton 0.7"}  # fmt: skip


# --- report -------------------------------------------------------------------------------------------------


def table(points: list[Point], errors: dict[tuple[str, str, int], float | None]) -> str:
    floor = {(p.model, p.in_flight): p for p in points if p.system == "bare grpc.aio"}
    lines = [
        "| model | in flight | system | req/s | p50 µs | p99 µs | req/s vs bare | p50 vs bare | p99 vs bare | "
        "server-side errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in sorted(points, key=lambda p: (p.model, p.in_flight, list(SYSTEM_KEYS.values()).index(p.system))):
        base = floor.get((p.model, p.in_flight))
        ratios = (
            [f"{p.rps / base.rps:.2f}x", f"{p.p50_us / base.p50_us:.2f}x", f"{p.p99_us / base.p99_us:.2f}x"]
            if base
            else ["", "", ""]
        )
        counted = errors.get((p.system, p.model, p.in_flight))
        lines.append(
            f"| {p.model} | {p.in_flight} | {p.system} | {p.rps:,.0f} | {p.p50_us:,.0f} | {p.p99_us:,.0f} | "
            + " | ".join(ratios)
            + f" | {'no counter' if counted is None else f'{counted:,.0f}'} |"
        )
    return "\n".join(lines)


def targets(points: list[Point]) -> list[str]:
    """Issue 18's targets, each met or missed, on this run's medians."""
    at = {(p.system, p.model, p.in_flight): p for p in points}
    me, bare_, triton, mls = "modelyard (stream on)", "bare grpc.aio", "pytriton 0.7", "mlserver 1.7"
    checks = []
    for model in ("tiny", "heavy"):
        ours = at.get((me, model, 32))
        for peer, factor, what in ((bare_, 1.0, "req/s"), (mls, 2.0, "req/s")) + (
            ((triton, 1.0, "req/s"),) if model == "heavy" else ()
        ):
            base = at.get((peer, model, 32))
            if ours and base:
                ratio = ours.rps / base.rps
                verdict = "met" if ratio >= factor else "MISSED"
                checks.append(f"- {model}, 32 in flight: {ratio:.2f}x {peer} {what} (target >= {factor:g}x): {verdict}")
        one, floor = at.get((me, model, 1)), at.get((bare_, model, 1))
        if one and floor:
            ratio = one.p50_us / floor.p50_us
            verdict = "met" if ratio <= 1.1 else "MISSED"
            checks.append(f"- {model}, 1 in flight: p50 {ratio:.2f}x bare (target <= 1.1x): {verdict}")
    return checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measured point")
    parser.add_argument("--runs", type=int, default=3, help="runs per point; the table shows medians")
    parser.add_argument("--systems", nargs="+", default=list(SYSTEM_KEYS), choices=list(SYSTEM_KEYS))
    parser.add_argument("--models", nargs="+", default=["tiny", "heavy"], choices=["tiny", "heavy"])
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    load_before, started, commit = load_average(), datetime.now(UTC), git_commit()

    binary = ensure_h2load()
    work = Path(tempfile.mkdtemp(prefix="modelyard-bench-"))
    builders = {"tiny": tiny_model, "heavy": heavy_model}
    paths = {name: work / f"{name}.onnx" for name in args.models}
    for name in args.models:
        paths[name].write_bytes(builders[name]())
    row = np.linspace(-1.0, 1.0, 30, dtype=np.float32)
    bodies = {name: request_body(name, row) for name in args.models}
    frames = {}
    for name, body in bodies.items():
        frames[name] = work / f"{name}.frame"
        frames[name].write_bytes(grpc_frame(body))

    systems = [SYSTEM_KEYS[key] for key in args.systems]
    measured: dict[tuple[str, str, int], list[tuple[float, Sequence[float]]]] = defaultdict(list)
    limits: dict[str, list[tuple[float, Sequence[float]]]] = defaultdict(list)
    errors: dict[tuple[str, str, int], float | None] = {}
    servers: dict[str, Server] = {}
    with contextlib.ExitStack() as stack:
        # Every server up at once and the runs interleaved (run 1 of every system, then run 2...): this machine
        # is shared, and systems measured minutes apart would see different background load. A system that does
        # not start or answer stops the bench (non-zero exit, no table): a one-sided table compares nothing.
        for system in systems:
            if system != IN_PROCESS:
                print(f"starting {system}", flush=True)
                servers[system] = stack.enter_context(SERVERS[system](work, paths))
        for server in servers.values():
            for name in args.models:
                check_sample(server.ports[name], name, bodies[name])
        for run in range(args.runs):
            for name in args.models:
                if IN_PROCESS in systems:  # one caller is the limit either way: there is nothing to overlap
                    limits[name].append(in_process(paths[name], row, args.duration))
                for system, server in servers.items():
                    for in_flight in LOADS:
                        before = server_errors(server)
                        rps, latencies = h2load(
                            binary, server.ports[name], frames[name], in_flight, args.duration, work / "h2load.log"
                        )
                        after = server_errors(server)
                        key = (system, name, in_flight)
                        if before is None or after is None:
                            errors[key] = None
                        else:
                            errors[key] = (errors.get(key) or 0.0) + after - before
                        measured[system, name, in_flight].append((rps, latencies))
                        print(f"run {run + 1} {system} {name} x{in_flight}: {rps:,.0f} req/s", flush=True)
        batched = batching(servers[MODELYARD]) if MODELYARD in servers else "not run"
    points = [summarize(system, name, in_flight, runs) for (system, name, in_flight), runs in measured.items()]
    limit_lines = [
        f"- {name}: {p.rps:,.0f} calls/s, p50 {p.p50_us:,.0f} µs, p99 {p.p99_us:,.0f} µs"
        for name in args.models
        if limits[name] and (p := summarize(IN_PROCESS, name, 1, limits[name]))
    ]
    load_after = load_average()
    configs = "\n".join(f"- {system}: {server.config}" for system, server in servers.items())
    report = "\n".join(
        [
            "# Serving benchmark\n",
            f"Written by `bench/serving/run.py --duration {args.duration:g} --runs {args.runs}` at commit "
            f"{commit}, {started:%Y-%m-%d %H:%M} UTC, on {os.cpu_count()} cores; load average (1, 5, 15 min) "
            f"{load_before} before, {load_after} after. Medians of {args.runs} interleaved runs; "
            f"one-row requests; h2load (1 in flight: 1 connection x 1 stream; 32 in flight: 16 connections x 2 "
            f"streams), a sample answer checked for an OK status first; server-side errors: the server's own "
            f"failure counter on /metrics, read before and after every point (summed over the runs).\n",
            "Systems:\n",
            configs + "\n",
            f"Modelyard's dynamic batching over the run (a version whose one-row call costs at least "
            f"`batch_overhead_us` batches while its measured runs say a full batch saves more than that; runs of "
            f"one request at one in flight count as batches of one): {batched}.\n",
            "Physical limit, onnxruntime `session.run` in this process (1 intra-op thread, one caller):\n",
            "\n".join(limit_lines) + "\n",
            table(points, errors) + "\n",
            "Targets (issue 18):\n",
            "\n".join(targets(points)),
        ]
    )
    args.out.write_text(report + "\n")
    print(report)


if __name__ == "__main__":
    main()
