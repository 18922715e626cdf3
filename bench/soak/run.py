"""`make bench-soak`: steady inference traffic against a `modelyard up` stack for `SOAK_MINUTES` (default 10), then
memory growth per process, the monitor's lag, errors and audit growth. Writes bench/soak/RESULTS.md.

The stack is `modelyard up` as a person runs it (the embedded broker, SQLite, the demo's settings and tokens) with
breast-cancer v1 approved and served. A paced gRPC client sends one-row ModelInfer requests at `--rate` per second;
every `--sample-s` the script reads each process's VmRSS (/proc/<pid>/status), the predictions the monitor counted
and the size of governance's database. RSS slope is a least-squares line through the samples after a warm-up
(the first fifth of the run), in MB per hour. Nothing here runs in `make test`.

Usage: uv run python bench/soak/run.py [--minutes 10] [--rate 200] [--out bench/soak/RESULTS.md]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
from rich.console import Console

from modelyard.cli.demo import PRINCIPALS, demo_settings
from modelyard.cli.demo import prepare_work_dir as prepare_work
from modelyard.cli.demo_data import SEED, load_data, train
from modelyard.cli.demo_scenario import MODEL, Scenario
from modelyard.cli.demo_timeline import Timeline
from modelyard.cli.stack import SERVICES, StackState
from modelyard.contracts.inference import grpc_service_pb2 as inference
from modelyard.contracts.inference import grpc_service_pb2_grpc as inference_grpc
from modelyard.testing.stack import Stack

HERE = Path(__file__).resolve().parent
BROKER = "kafka (embedded)"
IN_FLIGHT = 8  # concurrent callers sharing the pace
DRAIN_S = 60.0  # after the traffic, how long the monitor may take to count what was sent
PAGE_PRAGMAS = ("page_count", "freelist_count", "page_size")


@dataclass
class Samples:
    times: list[float] = field(default_factory=list)  # seconds since the traffic started
    rss_mb: dict[str, list[float]] = field(default_factory=dict)
    seen: list[int] = field(default_factory=list)  # predictions the monitor counted
    sent_ok: list[int] = field(default_factory=list)
    audit_bytes: list[int] = field(default_factory=list)


@dataclass
class Traffic:
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def pids(state: StackState) -> dict[str, int]:
    found = {name: record.pid for name, record in state.services.items()}
    if state.broker.pid is not None:
        found[BROKER] = state.broker.pid
    return found


def database_bytes(directory: Path) -> int:
    """Bytes in use in one service's SQLite databases, read through their write-ahead logs (the files' sizes would
    count a WAL that SQLite reuses, and free pages)."""
    used = 0
    for path in directory.glob("*.db"):
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)) as db:
            pages, free, size = (db.execute(f"PRAGMA {name}").fetchone()[0] for name in PAGE_PRAGMAS)
            used += (pages - free) * size
    return used


def records_seen(state: StackState) -> int:
    answer = httpx.get(f"{state.services['monitor'].http}/api/v1/status", params={"model_name": MODEL}, timeout=10)
    answer.raise_for_status()
    return sum(int(status["records_seen"]) for status in answer.json())


def slope_per_hour(times: list[float], values: list[float]) -> float:
    """Least-squares slope of values over time, per hour, after the first fifth of the run (warm-up)."""
    start = len(times) // 5
    x, y = np.array(times[start:]), np.array(values[start:])
    if len(x) < 3:
        return float("nan")
    return float(np.polyfit(x, y, 1)[0] * 3600)


async def send(serving: str, rows: np.ndarray[Any, Any], rate: float, seconds: float, traffic: Traffic) -> None:
    """`rate` requests per second for `seconds`, paced: request i is due at i / rate."""
    requests = []
    for row in rows.astype(np.float32):
        tensor = inference.ModelInferRequest.InferInputTensor(name="X", datatype="FP32", shape=[1, row.shape[0]])
        requests.append(
            inference.ModelInferRequest(model_name=MODEL, inputs=[tensor], raw_input_contents=[row.tobytes()])
        )
    total = int(rate * seconds)
    start = time.monotonic()
    next_index = 0

    async with grpc.aio.insecure_channel(serving) as channel:
        stub = inference_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]

        async def caller() -> None:
            nonlocal next_index
            while next_index < total:
                index, next_index = next_index, next_index + 1
                delay = start + index / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                try:
                    await stub.ModelInfer(requests[index % len(requests)], timeout=10)
                    traffic.ok += 1
                except grpc.aio.AioRpcError as exc:
                    traffic.errors[exc.code().name] += 1

        await asyncio.gather(*(caller() for _ in range(IN_FLIGHT)))


async def sample_until(
    done: asyncio.Task[None], state: StackState, every_s: float, traffic: Traffic, samples: Samples
) -> None:
    start = time.monotonic()
    governance_dir = state.data_dir / "governance"
    while True:
        samples.times.append(time.monotonic() - start)
        for name, pid in pids(state).items():
            value = rss_mb(pid)
            samples.rss_mb.setdefault(name, []).append(value if value is not None else float("nan"))
        samples.seen.append(await asyncio.to_thread(records_seen, state))
        samples.sent_ok.append(traffic.ok)
        samples.audit_bytes.append(database_bytes(governance_dir))
        if done.done():
            return
        await asyncio.wait([done], timeout=every_s)


async def soak(
    state: StackState, work: Path, tokens: dict[str, str], args: argparse.Namespace
) -> tuple[Traffic, Samples, int]:
    data = load_data()
    scenario = Scenario(state, work, tokens, Timeline(Console(file=io.StringIO())))
    async with scenario.connected():
        await scenario.serve(data, await asyncio.to_thread(train, data, 1.0), 1)
    traffic, samples = Traffic(), Samples()
    print(f"traffic: {args.rate:g} req/s for {args.minutes:g} min", flush=True)
    sending = asyncio.create_task(
        send(
            state.services["serving"].grpc,
            data.traffic(2_000, SEED, shifted=False),
            args.rate,
            args.minutes * 60,
            traffic,
        )
    )
    await sample_until(sending, state, args.sample_s, traffic, samples)
    await sending
    # What the monitor still has to read when the traffic stops is its lag; then it may catch up.
    deadline = time.monotonic() + DRAIN_S
    seen = await asyncio.to_thread(records_seen, state)
    while seen < traffic.ok and time.monotonic() < deadline:
        await asyncio.sleep(1)  # the monitor's count can only be polled
        seen = await asyncio.to_thread(records_seen, state)
    return traffic, samples, seen


def git_commit() -> str:
    result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE)
    dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, cwd=HERE).stdout.strip()
    return result.stdout.strip() + (" (with uncommitted changes)" if dirty else "")


def report(
    args: argparse.Namespace,
    traffic: Traffic,
    samples: Samples,
    drained_seen: int,
    load: tuple[float, float],
    started: tuple[str, time.struct_time],
) -> str:
    minutes = samples.times[-1] / 60
    lags = [ok - seen for ok, seen in zip(samples.sent_ok, samples.seen, strict=True)]
    audit_growth = samples.audit_bytes[-1] - samples.audit_bytes[0]
    per_million = audit_growth / traffic.ok * 1e6 if traffic.ok else float("nan")
    lines = [
        "# Soak benchmark",
        "",
        f"Written by `bench/soak/run.py` (`make bench-soak`). Commit {started[0]}, started "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', started[1])}, {os.cpu_count()} cores; 1-minute load average "
        f"{load[0]:.1f} before, {load[1]:.1f} after (the machine is shared).",
        "",
        f"Configuration: `modelyard up` (embedded broker, SQLite, the demo's settings), breast-cancer v1 served; "
        f"{args.rate:g} one-row ModelInfer requests per second over gRPC ({IN_FLIGHT} callers) for "
        f"{minutes:.1f} minutes; a sample every {args.sample_s:g} s ({len(samples.times)} samples). RSS slope: "
        "least-squares line through VmRSS after the first fifth of the run.",
        "",
        "| process | RSS at start (MB) | RSS at end (MB) | slope (MB/hour) |",
        "|---|---|---|---|",
    ]
    for name in [*SERVICES, BROKER]:
        values = samples.rss_mb.get(name)
        if not values:
            continue
        lines.append(f"| {name} | {values[0]:.0f} | {values[-1]:.0f} | {slope_per_hour(samples.times, values):+.1f} |")
    errors = ", ".join(f"{code} {count}" for code, count in traffic.errors.most_common()) or "none"
    lines += [
        "",
        "| measure | value |",
        "|---|---|",
        f"| requests answered OK | {traffic.ok:,} ({traffic.ok / samples.times[-1]:.0f}/s) |",
        f"| failed requests by status | {errors} |",
        f"| predictions the monitor counted by the end of the traffic | {samples.seen[-1]:,} |",
        f"| monitor lag (answered minus counted): median, max over samples | {int(np.median(lags)):,}, {max(lags):,} |",
        f"| counted {DRAIN_S:g} s after the traffic stopped (lost if below the answers) | {drained_seen:,} |",
        f"| governance database growth (pages in use) | {audit_growth / 1e6:.1f} MB |",
        f"| audit bytes per million predictions | {per_million / 1e6:.1f} MB |",
        f"| embedded broker RSS growth | {samples.rss_mb[BROKER][-1] - samples.rss_mb[BROKER][0]:+.0f} MB "
        f"({slope_per_hour(samples.times, samples.rss_mb[BROKER]):+.0f} MB/hour) |",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", "10")))
    parser.add_argument("--rate", type=float, default=float(os.environ.get("SOAK_RATE", "200")))
    parser.add_argument("--sample-s", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    started = (git_commit(), time.gmtime())  # the code the stack runs: what the tree holds when it starts
    with tempfile.TemporaryDirectory(prefix="modelyard-soak-") as temporary:
        data_dir = Path(temporary) / "stack"
        work = prepare_work(data_dir)
        tokens = {name: secrets.token_urlsafe(24) for name in PRINCIPALS}
        stack = Stack(data_dir, env=demo_settings(work, tokens))
        try:
            stack.wait_healthy()
            state = StackState.load(data_dir)
            assert state is not None
            traffic, samples, seen = asyncio.run(soak(state, work, tokens, args))
        finally:
            stack.stop()
    text = report(args, traffic, samples, seen, (load_before, os.getloadavg()[0]), started)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
