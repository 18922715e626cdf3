"""The checkpoints governance published outside its database: read back from `modelyard.governance.checkpoints`."""

from __future__ import annotations

from modelyard.contracts.events.v1.governance_events_pb2 import AuditCheckpointSigned
from modelyard.events import topics
from modelyard.governance import convert
from modelyard.governance.domain.audit import Checkpoint
from modelyard.kafka.admin import ensure_topics
from modelyard.kafka.reader import read_to_end
from modelyard.kafka.security import PLAINTEXT, KafkaSecurity


async def published_checkpoints(
    bootstrap: str, timeout_s: float = 30.0, security: KafkaSecurity = PLAINTEXT
) -> list[Checkpoint]:
    """Every checkpoint on the topic, in publication order (the signer keeps only those its key really signed)."""
    await ensure_topics(bootstrap, [topics.GOVERNANCE_CHECKPOINTS], timeout_s=timeout_s, security=security)
    events = await read_to_end(bootstrap, topics.GOVERNANCE_CHECKPOINTS, timeout_s=timeout_s, security=security)
    return [convert.checkpoint_of(e.payload) for e in events if isinstance(e.payload, AuditCheckpointSigned)]
