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


async def test_kill_mid_window_and_redelivery_keep_exact_counts(kafka_bootstrap: str, tmp_path: Path) -> None:
    await ensure_topics(kafka_bootstrap)
    model = f"restart-{uuid.uuid4().hex[:6]}"
    values = setting_values(kafka_bootstrap, tmp_path)
    config = settings(kafka_bootstrap, tmp_path).model_copy(update={"consumer_group": values["consumer_group"]})
    write_reference(config.resolved_reference_dir, model, 1)
    events = prediction_events(model, 1, 1700, seed=3)
    store = SqlMonitorStore(create_engine(config.resolved_database_url), config.policy())
    store.migrate()

    def seen() -> int:
        return sum(s.records_seen for s in store.statuses(model))

    log = tmp_path / "monitor.log"
    async with EventPublisher(kafka_bootstrap) as publisher:
        await publisher.publish_many(SERVING_PREDICTIONS, events[:7])  # 700: one full window and 200 more
        first = start_monitor(values, log)
        try:
            await until(lambda: seen() == 700, "the first 700 records", timeout_s=60)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        tp = await rewind(kafka_bootstrap, values["consumer_group"], model)
        await publisher.publish_many(SERVING_PREDICTIONS, events[7:])
    second = start_monitor(values, log)
    try:
        # Caught up = the group committed the partition's end: every redelivered record has been handled.
        await caught_up(kafka_bootstrap, values["consumer_group"], tp)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(20)
    (status,) = store.statuses(model)
    assert status.records_seen == 1700 and status.windows_closed == 1700 // WINDOW
    reports = store.window_reports(model, 1)
    assert [r.n for r in reports] == [WINDOW] * 3
    state = store.load_state(model, 1)
    assert state is not None
    assert sum(w.count for w in state.assembler.open.values()) == 1700 - 3 * WINDOW
    assert sum(len(c) for w in state.assembler.open.values() for c in w.chunks) == 1700 - 3 * WINDOW
