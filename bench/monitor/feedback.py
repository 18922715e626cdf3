"""`make bench-monitor` (part): labels joined per second, through Kafka and the monitor's service.

Predictions of a classifier are windowed first (their request ids wait for labels in the store); the monitor is
stopped and a fresh monitor on the same store resumes from its stored positions, per wall-clock second and per CPU
second of the monitor's process (the embedded broker runs in a process of its own). Two ways of sending the labels:
as the bulk feedback APIs publish them (`FeedbackBatch` events of 5,000: the first before the start, the rest
published once it joined, timed from then to the last joined label) and one `FeedbackReceived` a label (all produced
before the start, timed from the first joined label to the last). That covers consume + decode + join + the
performance tests + the checkpoint. Writes bench/monitor/feedback.md (several runs, the median).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from modelyard.contracts.events.v1 import serving_events_pb2
from modelyard.events.envelope import Event, Position
from modelyard.events.topics import MONITOR_FEEDBACK, SERVING_PREDICTIONS
from modelyard.kafka.admin import ensure_topics
from modelyard.kafka.embedded import EmbeddedBroker
from modelyard.kafka.producer import EventPublisher
from modelyard.monitor.adapters.events import checked_label, feedback_batches, feedback_event
from modelyard.monitor.adapters.schema import labels
from modelyard.monitor.bootstrap import build, service
from modelyard.monitor.domain.ports import Consumed
from modelyard.monitor.domain.views import VersionStatus
from modelyard.monitor.entrypoints.consumer import feedback_of
from modelyard.monitor.testing import (
    answers,
    consumed,
    prediction_events,
    settings,
    until,
    write_classifier_reference,
)

HERE = Path(__file__).resolve().parent


def label_events(model: str, predictions: list[Event], batched: bool = True) -> list[Event]:
    """A label for every prediction (the truth agrees with nine in ten): as the bulk feedback APIs publish them
    (`FeedbackBatch` events of up to 5,000 labels), or one `FeedbackReceived` each (`batched=False`)."""
    now = datetime.now(UTC)
    labels = []
    for event in predictions:
        assert isinstance(event.payload, serving_events_pb2.PredictionBatch)
        for request_id, predicted in answers(event.payload):
            truth = str(int(predicted) ^ int(len(labels) % 10 == 0))
            labels.append(checked_label(request_id, model, truth, now))
    return feedback_batches(labels) if batched else [feedback_event(label) for label in labels]


def seen(statuses: list[VersionStatus]) -> int:
    return sum(s.records_seen for s in statuses)


async def run_once(n: int, r: int, max_records: int, batched: bool) -> tuple[float, float]:
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        await ensure_topics(broker.bootstrap)
        model = f"labels{r}"
        config = settings(broker.bootstrap, Path(tmp)).model_copy(
            update={"window_max_events": 1000, "consumer_max_records": max_records}
        )
        write_classifier_reference(config.resolved_reference_dir, model, 1, accuracy=0.9)
        predictions = prediction_events(model, 1, n, seed=r, batch=500, classifier=True)
        parts = build(config)
        async with service(parts).running(), EventPublisher(broker.bootstrap) as publisher:
            await publisher.publish_many(SERVING_PREDICTIONS, predictions)
            await until(lambda: seen(parts.store.statuses(model)) == n, "the predictions", timeout_s=600)
        parts.engine.dispose()
        feedback = label_events(model, predictions, batched)
        # One label per record: all before the monitor starts (their production is not its CPU), timed from the
        # first joined. In batches, one fetch takes them all: the first batch before the start, the others timed
        # from their publication (a handful of records: a negligible share of the CPU counted).
        before, after = (feedback[:1], feedback[1:]) if batched else (feedback, [])
        async with EventPublisher(broker.bootstrap) as publisher:
            await publisher.publish_many(MONITOR_FEEDBACK, before)
        parts = build(config)

        def joined() -> int:
            # A count, not `statuses()`: its realised metrics over every label would be the bench's own load.
            with parts.engine.connect() as db:
                return int(db.scalar(sa.select(sa.func.count()).select_from(labels)) or 0)

        async with service(parts).running(), EventPublisher(broker.bootstrap) as publisher:
            await until(lambda: joined() > 0, "the first label", timeout_s=120)
            started, cpu, first = time.perf_counter(), time.process_time(), joined()
            await publisher.publish_many(MONITOR_FEEDBACK, after)
            await until(lambda: joined() >= n, "every label", timeout_s=600, every_s=0.05)
            wall, cpu_s = time.perf_counter() - started, time.process_time() - cpu
        parts.engine.dispose()
        return (n - first) / wall, (n - first) / cpu_s


def join_only(n: int, r: int) -> float:
    """Labels per CPU second of `Monitor.handle_feedback` alone (join + performance tests + checkpoint), fed the
    feedback batches in-process one at a time: the monitor's own share of the end-to-end figure."""
    with tempfile.TemporaryDirectory() as tmp:
        config = settings("127.0.0.1:1", Path(tmp)).model_copy(update={"window_max_events": 1000})
        model = f"join{r}"
        write_classifier_reference(config.resolved_reference_dir, model, 1, accuracy=0.9)
        parts = build(config)
        predictions = prediction_events(model, 1, n, seed=r, batch=500, classifier=True)
        for offset, event in enumerate(predictions):
            assert isinstance(event.payload, serving_events_pb2.PredictionBatch)
            parts.monitor.handle_predictions([consumed(offset, event.payload)])
        labels = [
            Consumed(Position(MONITOR_FEEDBACK.name, 0, i), feedback_of(e))
            for i, e in enumerate(label_events(model, predictions))
        ]
        cpu = time.process_time()
        for consumed_labels in labels:
            parts.monitor.handle_feedback([consumed_labels])
        rate = n / (time.process_time() - cpu)
        parts.profiles.close()
        parts.engine.dispose()
        return rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--labels", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-records", type=int, default=500, help="MODELYARD_MONITOR_CONSUMER_MAX_RECORDS")
    args = parser.parse_args()
    rates = [asyncio.run(run_once(args.labels, r, args.max_records, True)) for r in range(args.repeats)]
    singles = [asyncio.run(run_once(args.labels, r, args.max_records, False)) for r in range(args.repeats)]
    joins = [join_only(args.labels, r) for r in range(args.repeats)]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    load = os.getloadavg()
    lines = [
        "# Labels joined per second\n",
        f"Commit {commit}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} cores shared, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
        f"embedded broker, SQLite (synchronous FULL), consumer_max_records {args.max_records}; "
        f"{args.labels} labels a run, median of {args.repeats} runs (`bench/monitor/feedback.py`).\n",
        "End to end: consume + decode + join + performance tests + checkpoint, timed from the first joined label to "
        "the last, with the labels as the bulk APIs publish them (`FeedbackBatch` events of 5,000) and as one "
        "`FeedbackReceived` each. Join only: `Monitor.handle_feedback` in-process on the same batches (SQLite, same "
        "store).\n",
        "| path | labels/s (wall) | labels/s per CPU second of the monitor | runs |",
        "|---|---|---|---|",
        *(
            f"| end to end (Kafka), {name} | {statistics.median(w for w, _ in runs):,.0f} | "
            f"{statistics.median(c for _, c in runs):,.0f} | "
            + "; ".join(f"{w:,.0f} wall, {c:,.0f} CPU" for w, c in runs)
            + " |"
            for name, runs in (("`FeedbackBatch`", rates), ("one `FeedbackReceived` a label", singles))
        ),
        f"| join only | - | {statistics.median(joins):,.0f} | " + "; ".join(f"{j:,.0f}" for j in joins) + " |",
    ]
    (HERE / "feedback.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
