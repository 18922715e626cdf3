"""Topic administration: create the catalogue's topics and their dead-letter topics, idempotently, and repair
them after a broker lost them (`repair_topics`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError, for_code

from modelyard.events import topics as catalogue
from modelyard.events.topics import DLQ_PARTITIONS, Topic
from modelyard.kafka.security import PLAINTEXT, KafkaSecurity
from modelyard.retry import Backoff

log = logging.getLogger(__name__)

# Between attempts while the broker is still starting (short: `modelyard up` waits on it).
TOPIC_SETUP_RETRY = Backoff(first_s=0.1, max_s=1.0)


# How the cluster id of a broker `modelyard.kafka.embedded` started begins (a random part follows, new at every start,
# so that a client can tell that the broker restarted and lost every topic and offset): a broker that keeps topics in
# memory only, whose topics a client's metadata request re-creates with the broker's default partitions.
EMBEDDED_CLUSTER_ID = "modelyard-embedded"


class TopicSetupError(RuntimeError):
    """The broker refused to create a topic for a reason that waiting will not fix, or never became ready."""


@dataclass(frozen=True)
class _Spec:
    partitions: int
    configs: tuple[tuple[str, str], ...] = ()


def _wanted(topics: Iterable[Topic]) -> dict[str, _Spec]:
    """How to create every topic: each catalogue topic and its dead-letter topic."""
    wanted: dict[str, _Spec] = {}
    for topic in topics:
        wanted[topic.name] = _Spec(topic.partitions, topic.configs)
        wanted[topic.dlq] = _Spec(DLQ_PARTITIONS)
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
    existing: dict[str, _Spec] = {}
    deadline = time.monotonic() + timeout_s
    delay = TOPIC_SETUP_RETRY.first_s
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
        delay = TOPIC_SETUP_RETRY.after(delay)
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


async def repair_topics(
    bootstrap: str, topics: Iterable[Topic], *, replication_factor: int = 1, security: KafkaSecurity = PLAINTEXT
) -> list[str]:
    """One verification round: create every topic of `topics` (and its dead-letter topic) that the broker lacks;
    on the embedded broker, also delete and re-create one with fewer partitions than the catalogue's (a client
    re-created it after a restart: records keyed to the missing partitions would be acknowledged and dropped).
    On a real cluster a short topic is an operator's choice and is left alone. Returns the topics repaired;
    raises the client's error when the broker does not answer.
    """
    wanted = _wanted(topics)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5_000, **security.client_options())
    try:
        await admin.start()
        # Every topic, by asking for none: a metadata request naming a missing topic would auto-create it.
        metadata = (await admin._get_cluster_metadata(None)).to_object()
        present = {t["topic"]: len(t["partitions"]) for t in metadata["topics"] if t["error_code"] == 0}
        repair = {name: spec for name, spec in wanted.items() if name not in present}
        short = [name for name, spec in wanted.items() if name in present and present[name] < spec.partitions]
        if short and str(metadata.get("cluster_id")).startswith(EMBEDDED_CLUSTER_ID):
            await admin.delete_topics(short)
            repair |= {name: wanted[name] for name in short}
        if not repair:
            return []
        settled = _settled(await admin.create_topics(_new_topics(repair, replication_factor)))
    finally:
        await admin.close()
    return sorted(name for name, already_there in settled.items() if not already_there)


async def cluster_id(bootstrap: str, security: KafkaSecurity = PLAINTEXT) -> str | None:
    """The id of the cluster at `bootstrap` (None if the broker has none); raises when it does not answer."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5_000, **security.client_options())
    try:
        await admin.start()
        found = (await admin.describe_cluster()).get("cluster_id")
    finally:
        await admin.close()
    return None if found is None else str(found)


def _new_topics(wanted: dict[str, _Spec], replication_factor: int) -> list[NewTopic]:
    return [
        NewTopic(name, spec.partitions, replication_factor, topic_configs=dict(spec.configs))
        for name, spec in wanted.items()
    ]


async def _create(
    bootstrap: str, wanted: dict[str, _Spec], replication_factor: int, security: KafkaSecurity
) -> dict[str, bool]:
    """One CreateTopics round: {topic: already existed} for each topic that is settled, created or not.

    Raises the first non-retriable per-topic error; retriable ones are left out, so the caller asks again.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5_000, **security.client_options())
    try:
        await admin.start()
        response = await admin.create_topics(_new_topics(wanted, replication_factor))
    finally:
        await admin.close()
    return _settled(response)


def _settled(response: Any) -> dict[str, bool]:
    settled: dict[str, bool] = {}
    for name, code, *message in response.topic_errors:
        error = for_code(code)
        if code == 0 or error is TopicAlreadyExistsError:
            settled[name] = code != 0
        elif not error.retriable:
            raise TopicSetupError(f"creating topic {name!r}: {error.__name__} {message[0] if message else ''}")
    return settled


async def _warn_on_partition_mismatch(bootstrap: str, expected: dict[str, _Spec], security: KafkaSecurity) -> None:
    # An existing topic keeps its partition count; fewer than the catalogue's silently caps parallelism.
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5_000, **security.client_options())
    try:
        await admin.start()
        described = await admin.describe_topics(list(expected))
    finally:
        await admin.close()
    for topic in described:
        actual = len(topic["partitions"])
        if actual != expected[topic["topic"]].partitions:
            log.warning(
                "topic %s exists with %d partitions; the catalogue says %d",
                topic["topic"],
                actual,
                expected[topic["topic"]].partitions,
            )
