"""Topic administration: create the catalogue's topics and their dead-letter topics, idempotently."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError, for_code

from modelyard.events import topics as catalogue
from modelyard.events.topics import DLQ_PARTITIONS, Topic
from modelyard.kafka.security import PLAINTEXT, KafkaSecurity

log = logging.getLogger(__name__)


class TopicSetupError(RuntimeError):
    """The broker refused to create a topic for a reason that waiting will not fix, or never became ready."""


def _wanted(topics: Iterable[Topic]) -> dict[str, int]:
    """Partition count of every topic to create: each catalogue topic and its dead-letter topic."""
    wanted: dict[str, int] = {}
    for topic in topics:
        wanted[topic.name] = topic.partitions
        wanted[topic.dlq] = DLQ_PARTITIONS
    return wanted


async def ensure_topics(
    bootstrap: str,
    topics: Iterable[Topic] = catalogue.ALL,
    *,
    replication_factor: int = 1,
    timeout_s: float = 30.0,
    security: KafkaSecurity = PLAINTEXT,
) -> None:
    """Create every topic with its explicit partition count, plus `<topic>.dlq`; existing topics are left alone.

    Retries with backoff until `timeout_s` while the broker is still starting (connection refused, no
    controller yet), so `modelyard up` can call it right after spawning the broker.
    """
    pending = _wanted(topics)
    existing: dict[str, int] = {}
    deadline = time.monotonic() + timeout_s
    delay = 0.1
    last_error: BaseException | None = None
    while pending:
        try:
            # Probe TCP first: aiokafka logs every refused bootstrap at ERROR, which is noise during start-up.
            if not await _listening(bootstrap):
                raise ConnectionRefusedError(f"nothing listens on {bootstrap} yet")
            created_or_existing = await _create(bootstrap, pending, replication_factor, security)
        except (KafkaError, OSError, TimeoutError) as exc:
            # Connection refused / no controller yet are retriable; bad credentials or versions are not.
            if isinstance(exc, KafkaError) and not (exc.retriable or isinstance(exc, KafkaTimeoutError)):
                raise TopicSetupError(f"creating topics on {bootstrap}: {exc!r}") from exc
            last_error, created_or_existing = exc, {}
        for name, already_there in created_or_existing.items():
            if already_there:
                existing[name] = pending[name]
            del pending[name]
        if not pending:
            break
        if time.monotonic() + delay > deadline:
            raise TopicSetupError(
                f"topics {sorted(pending)} not created on {bootstrap} within {timeout_s:g}s: {last_error!r}"
            ) from last_error
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)
    if existing:
        await _warn_on_partition_mismatch(bootstrap, existing, security)


async def _listening(bootstrap: str) -> bool:
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host.strip("[]"), int(port)), 1.0)
        except (OSError, TimeoutError):
            continue
        writer.close()
        await writer.wait_closed()
        return True
    return False


async def _create(
    bootstrap: str, wanted: dict[str, int], replication_factor: int, security: KafkaSecurity
) -> dict[str, bool]:
    """One CreateTopics round: {topic: already existed} for each topic that is settled, created or not.

    Raises the first non-retriable per-topic error; retriable ones are left out, so the caller asks again.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5_000, **security.client_options())
    try:
        await admin.start()
        response = await admin.create_topics(
            [NewTopic(name, partitions, replication_factor) for name, partitions in wanted.items()]
        )
    finally:
        await admin.close()
    settled: dict[str, bool] = {}
    for name, code, *message in response.topic_errors:
        error = for_code(code)
        if code == 0 or error is TopicAlreadyExistsError:
            settled[name] = code != 0
        elif not error.retriable:
            raise TopicSetupError(f"creating topic {name!r}: {error.__name__} {message[0] if message else ''}")
    return settled


async def _warn_on_partition_mismatch(bootstrap: str, expected: dict[str, int], security: KafkaSecurity) -> None:
    # An existing topic keeps its partition count; fewer than the catalogue's silently caps parallelism.
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5_000, **security.client_options())
    try:
        await admin.start()
        described = await admin.describe_topics(list(expected))
    finally:
        await admin.close()
    for topic in described:
        actual = len(topic["partitions"])
        if actual != expected[topic["topic"]]:
            log.warning(
                "topic %s exists with %d partitions; the catalogue says %d",
                topic["topic"],
                actual,
                expected[topic["topic"]],
            )
