"""An attacker with write access to governance's database, but not the signing key, tries the three rewrites the
checkpoints alone did not catch: rewrite entries from k on (re-hashed) and drop the checkpoints from k on, cut the
tail, replace the head. Each is reported by `verify` and the signer refuses to sign over it: with its memory, and
after a restart that lost it, from the checkpoints it published on the real broker. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from modelyard.contracts.events.v1 import registry_events_pb2
from modelyard.contracts.events.v1.governance_events_pb2 import AuditCheckpointSigned
from modelyard.events import topics
from modelyard.events.envelope import Event
from modelyard.governance import convert
from modelyard.governance.adapters.published import published_checkpoints
from modelyard.governance.adapters.sql import schema
from modelyard.governance.bootstrap import GovernanceParts, build
from modelyard.governance.domain.audit import Checkpoint
from modelyard.governance.domain.errors import AuditTampered
from modelyard.governance.testing import (
    EVE,
    FixedEvaluator,
    InMemoryCatalog,
    governance_settings,
    rewrite_audit_from,
    start_governance,
    truncate_audit_to,
)
from modelyard.kafka.admin import ensure_topics
from modelyard.kafka.producer import EventPublisher
from modelyard.sql.outbox import OutboxRelay

pytestmark = pytest.mark.integration

ENTRIES = 12  # checkpoint_every is 5 in tests: checkpoints at 5 and 10, and one asked for at the head (12)


@dataclass(frozen=True)
class Attack:
    name: str
    run: Callable[[Engine], None]
    refusal: str  # what the signer says
    walk: tuple[int, str]  # the first bad entry and problem the walk finds in the database alone ("": none)
    against_published: tuple[int, str]  # and against the published checkpoints


ATTACKS = [
    Attack(
        "rewrite-from-k-and-drop-checkpoints",
        lambda engine: rewrite_audit_from(engine, 7),
        "entry 12: its hash differs from the one signed at",
        (6, "entries 6 to 11: no signed checkpoint covers them"),
        (10, "entry 10: its hash differs from the checkpoint published"),
    ),
    Attack(
        "truncation",
        lambda engine: truncate_audit_to(engine, 10),  # to a checkpointed entry: the database alone looks intact
        "the chain ends at entry 10, behind entry 12 signed at",
        (11, ""),
        (11, "the chain ends at entry 10, but a checkpoint of entry 12 was published"),
    ),
    Attack(
        "head-replacement",
        lambda engine: rewrite_audit_from(engine, ENTRIES),
        "entry 12: its hash differs from the one signed at",
        (11, "entries 11 to 12: the head is not signed"),
        (12, "entry 12: its hash differs from the checkpoint published"),
    ),
]


def record(governance: GovernanceParts, count: int) -> None:
    for i in range(count):
        tags = registry_events_pb2.TagsChanged(model_name="m", version=i + 1, changed_by="alice")
        governance.handlers.record_event(Event.new("m", tags, "registry"))


def outbox_checkpoints(governance: GovernanceParts) -> list[Checkpoint]:
    """What governance queued for the checkpoints topic (with each checkpoint's row): what it publishes."""
    outbox = schema.outbox
    query = sa.select(outbox.c.payload).where(outbox.c.topic == topics.GOVERNANCE_CHECKPOINTS.name)
    with governance.store.engine.connect() as connection:
        payloads = connection.scalars(query.order_by(outbox.c.id)).all()
    return [convert.checkpoint_of(AuditCheckpointSigned.FromString(payload)) for payload in payloads]


def assert_detected(governance: GovernanceParts, attack: Attack, published: list[Checkpoint]) -> None:
    handlers = governance.handlers
    found = handlers.verify_audit(EVE)
    first_bad, problem = attack.walk
    assert not found.ok and found.first_bad_seq == first_bad, found.problem
    assert problem in found.problem and f"the signer refuses to sign the head: {attack.refusal}" in found.problem
    against = handlers.verify_audit(EVE, published)
    assert (against.first_bad_seq, against.ok) == (attack.against_published[0], False), against.problem
    assert against.problem.startswith(attack.against_published[1]), against.problem
    with pytest.raises(AuditTampered, match=attack.refusal):
        handlers.checkpoint()
    with pytest.raises(AuditTampered, match=attack.refusal):
        handlers.export_audit(EVE, "m")
    record(governance, 1)  # new events are still recorded, but never signed over the rewrite
    with pytest.raises(AuditTampered):
        handlers.checkpoint()


def test_a_healthy_chain_verifies_with_and_without_what_was_published(governance: GovernanceParts) -> None:
    record(governance, ENTRIES)
    assert governance.handlers.checkpoint() is not None
    published = outbox_checkpoints(governance)
    assert [c.seq for c in published] == [5, 10, 12]
    for against in ([], published):
        result = governance.handlers.verify_audit(EVE, against)
        assert result.ok and (result.entries, result.checkpoints, result.published) == (12, 3, len(against))


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: a.name)
def test_each_attack_is_detected_and_never_signed(governance: GovernanceParts, attack: Attack) -> None:
    record(governance, ENTRIES)
    governance.handlers.checkpoint()
    published = outbox_checkpoints(governance)
    attack.run(governance.store.engine)
    assert_detected(governance, attack, published)


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: a.name)
async def test_after_a_restart_the_signer_recovers_from_the_topic(
    tmp_path: Path, database_url: str, kafka_bootstrap: str, attack: Attack
) -> None:
    before = start_governance(tmp_path, database_url)
    record(before, ENTRIES)
    before.handlers.checkpoint()
    async with EventPublisher(kafka_bootstrap) as publisher:

        async def prepare() -> None:
            await ensure_topics(kafka_bootstrap, [topics.GOVERNANCE_CHECKPOINTS], timeout_s=10)

        assert await OutboxRelay(before.store.engine, schema.outbox, publisher, prepare=prepare).relay_once() == 3
    attack.run(before.store.engine)
    before.store.engine.dispose()

    # Same database and key, nothing in memory; built as the service does (its signer not yet recovered).
    restarted = build(
        governance_settings(tmp_path, database_url), catalog=InMemoryCatalog(), evaluator=FixedEvaluator()
    )
    try:
        published = await published_checkpoints(kafka_bootstrap)  # other tests' checkpoints too (other keys)
        recovered = restarted.handlers.recover_signer(published)
        assert recovered is not None and recovered.seq == ENTRIES
        assert_detected(restarted, attack, published)
    finally:
        restarted.store.engine.dispose()
