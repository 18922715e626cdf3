"""Signed events in tests: fixed keys for governance (decisions) and the monitor (incidents), a publisher that
signs with them, and a reader of what landed on a topic (its dead letters included).

The keys are fixed so that settings built in different fixtures agree; they sign nothing outside tests.
"""

from __future__ import annotations

import hashlib
from typing import Any

from aiokafka import AIOKafkaConsumer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from modelyard.events.signing import EventSigner, TrustedKeys, public_key_hex
from modelyard.kafka.producer import EventPublisher


def _test_key(name: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"modelyard test key: {name}".encode()).digest())


GOVERNANCE_KEY = _test_key("governance")
MONITOR_KEY = _test_key("monitor")
GOVERNANCE_PUBLIC = public_key_hex(GOVERNANCE_KEY)
MONITOR_PUBLIC = public_key_hex(MONITOR_KEY)


def seed_hex(key: Ed25519PrivateKey) -> str:
    return key.private_bytes_raw().hex()


def trusted() -> TrustedKeys:
    """Trust in both test keys, as a consumer that reads decisions and incidents holds it."""
    return TrustedKeys({"governance": [GOVERNANCE_KEY.public_key()], "monitor": [MONITOR_KEY.public_key()]})


def signed_publisher(bootstrap: str, key: Ed25519PrivateKey) -> EventPublisher:
    """A publisher whose events on signed topics carry `key`'s signature."""
    return EventPublisher(bootstrap, signer=EventSigner(key))


async def read_records(bootstrap: str, topic: str) -> list[Any]:
    """Every record on `topic` so far, read without a consumer group (aiokafka ConsumerRecords)."""
    reader = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False, group_id=None
    )
    await reader.start()
    try:
        batches = await reader.getmany(timeout_ms=3000, max_records=100_000)
    finally:
        await reader.stop()
    return [r for records in batches.values() for r in records]
