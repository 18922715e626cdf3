"""The audit signer signs only a chain that extends the last checkpoint it signed, and recovers that checkpoint
from what it published (its own signatures only) before it signs anything."""

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from modelyard.governance.domain.audit import AuditEntry, Checkpoint, chain_entry
from modelyard.governance.domain.errors import AuditTampered, SignerNotReady
from modelyard.governance.domain.signer import AuditSigner

pytestmark = pytest.mark.unit

KEY = Ed25519PrivateKey.generate()
NOW = datetime(2026, 3, 1, tzinfo=UTC)


def extend(entries: list[AuditEntry], n: int, tag: str = "") -> list[AuditEntry]:
    for _ in range(n):
        previous = entries[-1] if entries else None
        seq = previous.seq + 1 if previous else 1
        entries.append(
            chain_entry(previous, recorded_at=NOW, kind="test", event_id=f"e{seq}{tag}", source="t", body={"seq": seq})
        )
    return entries


def signer(*published: Checkpoint) -> AuditSigner:
    ready = AuditSigner(KEY, clock=lambda: NOW)
    ready.recover(published)
    return ready


def sign(signer: AuditSigner, entries: list[AuditEntry], every: int = 3) -> list[Checkpoint]:
    def read(first: int, last: int) -> Iterable[AuditEntry]:
        return [e for e in entries if first <= e.seq <= last]

    checkpoints = signer.sign(entries[-1] if entries else None, read, every)
    signer.signed(checkpoints)
    return checkpoints


def test_it_signs_every_due_entry_and_the_head_and_nothing_twice() -> None:
    entries = extend([], 7)
    fresh = signer()
    assert [c.seq for c in sign(fresh, entries)] == [3, 6, 7]
    assert sign(fresh, entries) == [] and fresh.last is not None and fresh.last.seq == 7
    assert [c.seq for c in sign(fresh, extend(entries, 3))] == [9, 10]
    assert sign(signer(), []) == []


def test_it_signs_nothing_before_it_has_recovered() -> None:
    with pytest.raises(SignerNotReady):
        AuditSigner(KEY).sign(None, lambda first, last: [], 3)


def test_it_refuses_a_rewrite_whose_checkpoints_were_dropped() -> None:
    entries = extend([], 7)
    memory = signer()
    sign(memory, entries)
    forged = extend(entries[:4], 4, tag="forged")  # entries 5 on rewritten, re-hashed, one more appended
    with pytest.raises(
        AuditTampered, match=r"^entry 7: its hash differs from the one signed at .*rewritten"
    ) as refused:
        sign(memory, forged)
    assert refused.value.seq == 7


def test_it_refuses_a_truncated_chain() -> None:
    entries = extend([], 7)
    memory = signer()
    sign(memory, entries)
    with pytest.raises(AuditTampered, match=r"^the chain ends at entry 5, behind entry 7 signed at .*: entries 6 to 7"):
        sign(memory, entries[:5])
    with pytest.raises(AuditTampered, match=r"^the chain ends at entry 0"):
        sign(memory, [])


def test_it_refuses_a_replaced_head() -> None:
    entries = extend([], 6)
    memory = signer()
    sign(memory, entries)
    replaced = extend(entries[:5], 1, tag="replaced")
    with pytest.raises(AuditTampered, match=r"^entry 6: its hash differs from the one signed at"):
        sign(memory, replaced)


def test_it_refuses_a_broken_link_after_its_checkpoint() -> None:
    entries = extend([], 8)
    memory = signer()
    sign(memory, entries[:6])
    entries[6] = replace(entries[6], body='{"forged":true}')
    with pytest.raises(AuditTampered, match=r"^entry 7: its content does not match its hash"):
        sign(memory, entries)


def test_after_a_restart_it_recovers_the_latest_checkpoint_it_really_signed() -> None:
    entries = extend([], 7)
    published = sign(signer(), entries)
    other = AuditSigner(Ed25519PrivateKey.generate(), clock=lambda: NOW)
    other.recover([])
    foreign = sign(other, extend([], 9))[-1]  # another key's, further along: not this signer's to extend
    forged = replace(published[-1], seq=8)  # claims this key but the signature does not hold
    restarted = signer(published[0], *published[1:], foreign, forged)
    assert restarted.last == published[-1]
    with pytest.raises(AuditTampered, match=r"^entry 7: its hash differs"):
        sign(restarted, extend(entries[:5], 2, tag="forged"))
