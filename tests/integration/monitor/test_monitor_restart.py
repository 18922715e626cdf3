"""Exactly-once effect on at-least-once input: the monitor is SIGKILLed mid-window, its consumer group's commit is
rewound to the start (as if every Kafka commit had been lost), and after a restart, which resumes from the offsets
checkpointed with the window state, the window counts still equal what was published."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from modelyard.events.envelope import Event
from modelyard.events.topics import SERVING_PREDICTIONS
from modelyard.kafka.admin import ensure_topics
from modelyard.kafka.producer import EventPublisher
from modelyard.monitor.adapters.store import SqlMonitorStore
from modelyard.monitor.testing import (
    WINDOW,
    prediction_events,
    setting_values,
    settings,
    until,
    write_reference,
)
from modelyard.sql.engine import create_engine
from modelyard.testing.signing import read_records

pytestmark = pytest.mark.integration


def start_monitor(values: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    env = os.environ | {f"MODELYARD_MONITOR_{k.upper()}": v for k, v in values.items()}
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "modelyard.monitor"], env=env, stdout=out, stderr=out)


async def rewind(bootstrap: str, group: str, model: str) -> TopicPartition:
    """Commit, for `group`, the offset of `model`'s first record: everything after it is delivered again."""
    records = await read_records(bootstrap, SERVING_PREDICTIONS.name)
    first = min((r.offset, r.partition) for r in records if r.key == model.encode())
    offset, partition = first
    tp = TopicPartition(SERVING_PREDICTIONS.name, partition)
    # Join the group as a member (the killed one's session expires first), commit, leave.
    committer = AIOKafkaConsumer(
        SERVING_PREDICTIONS.name,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        session_timeout_ms=2000,
        heartbeat_interval_ms=200,
    )
    await committer.start()
    try:
        await until(lambda: tp in committer.assignment(), "the rewinding member's assignment", timeout_s=30)
        await committer.commit({tp: offset})
    finally:
        await committer.stop()
    return tp


async def caught_up(bootstrap: str, group: str, tp: TopicPartition, timeout_s: float = 60.0) -> None:
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await probe.start()
    try:
        end = (await probe.end_offsets([tp]))[tp]
        deadline = time.monotonic() + timeout_s
        while (await probe.committed(tp) or 0) < end:
            if time.monotonic() > deadline:
                pytest.fail(f"the monitor did not catch up with {tp} in {timeout_s}s")
            await asyncio.sleep(0.2)
    finally:
        await probe.stop()


def monitored(bootstrap: str, tmp_path: Path, model: str) -> tuple[dict[str, str], SqlMonitorStore]:
    """The settings of monitor processes for `model` (its reference written) and their store."""
    values = setting_values(bootstrap, tmp_path)
    config = settings(bootstrap, tmp_path).model_copy(update={"consumer_group": values["consumer_group"]})
    write_reference(config.resolved_reference_dir, model, 1)
    store = SqlMonitorStore(create_engine(config.resolved_database_url), config.policy())
    store.migrate()
    return values, store


async def kill_rewind_restart(
    bootstrap: str, values: dict[str, str], store: SqlMonitorStore, events: list[Event], before: int, log: Path
) -> None:
    """Publish `events[:before]`, run a monitor until it has seen every record of them and SIGKILL it, rewind its
    group to the model's first record, publish the rest and run a second monitor until it caught up."""

    def seen() -> int:
        return sum(s.records_seen for s in store.statuses(events[0].key))

    async with EventPublisher(bootstrap) as publisher:
        await publisher.publish_many(SERVING_PREDICTIONS, events[:before])
        records = sum(len(e.payload.request_ids) for e in events[:before])  # type: ignore[attr-defined]
        first = start_monitor(values, log)
        try:
            await until(lambda: seen() == records, f"the first {records} records", timeout_s=60)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        tp = await rewind(bootstrap, values["consumer_group"], events[0].key)
        await publisher.publish_many(SERVING_PREDICTIONS, events[before:])
    second = start_monitor(values, log)
    try:
        # Caught up = the group committed the partition's end: every redelivered record has been handled.
        await caught_up(bootstrap, values["consumer_group"], tp)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(20)


async def test_kill_mid_window_and_redelivery_keep_exact_counts(kafka_bootstrap: str, tmp_path: Path) -> None:
    await ensure_topics(kafka_bootstrap)
    model = f"restart-{uuid.uuid4().hex[:6]}"
    values, store = monitored(kafka_bootstrap, tmp_path, model)
    events = prediction_events(model, 1, 1700, seed=3)
    # 700 first: one full window and 200 more.
    await kill_rewind_restart(kafka_bootstrap, values, store, events, 7, tmp_path / "monitor.log")
    (status,) = store.statuses(model)
    assert status.records_seen == 1700 and status.windows_closed == 1700 // WINDOW
    reports = store.window_reports(model, 1)
    assert [r.n for r in reports] == [WINDOW] * 3
    state = store.load_state(model, 1)
    assert state is not None
    assert sum(w.count for w in state.assembler.open.values()) == 1700 - 3 * WINDOW
    assert sum(len(c) for w in state.assembler.open.values() for c in w.chunks) == 1700 - 3 * WINDOW


async def test_a_sliver_merged_before_a_kill_gives_the_same_windows_after_redelivery(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    await ensure_topics(kafka_bootstrap)
    model = f"sliver-{uuid.uuid4().hex[:6]}"
    values, store = monitored(kafka_bootstrap, tmp_path, model)
    slot_end = (1.7e9 // 3600 + 1) * 3600
    # 100 predictions in the last 0.1 s of a slot (a sliver: min_events is 200), then 1,000 from 40 s into the next
    # (past the allowed lateness): the sliver moves into the next slot's first window.
    sliver = prediction_events(model, 1, 100, seed=1, start=slot_end - 0.1)
    events = sliver + prediction_events(model, 1, 1000, seed=2, start=slot_end + 40)
    # The sliver and the 200 that moved it first.
    await kill_rewind_restart(kafka_bootstrap, values, store, events, 3, tmp_path / "monitor.log")
    (status,) = store.statuses(model)
    assert (status.records_seen, status.windows_closed) == (1100, 2)
    newest, merged = store.window_reports(model, 1)
    slot = int(slot_end // 3600)
    assert (merged.window, merged.n, merged.tested, merged.start) == (f"{slot}.0", WINDOW, True, slot_end - 3600)
    assert (newest.window, newest.n, newest.start) == (f"{slot}.1", WINDOW, slot_end)
    state = store.load_state(model, 1)
    assert state is not None and [w.count for w in state.assembler.open.values()] == [100]
    request_id = sliver[0].payload.request_ids[0]  # type: ignore[attr-defined]
    assert store.prediction_trace(request_id).prediction.window == f"{slot}.0"  # type: ignore[union-attr]
