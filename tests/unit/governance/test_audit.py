from dataclasses import replace
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from modelyard.governance.domain.audit import AuditEntry, chain_entry, sign_checkpoint, verify

pytestmark = pytest.mark.unit

KEY = Ed25519PrivateKey.generate()
NOW = datetime(2026, 3, 1, tzinfo=UTC)


def chain(n: int) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    for i in range(n):
        entries.append(
            chain_entry(
                entries[-1] if entries else None,
                recorded_at=NOW,
                kind="test",
                event_id=f"e{i}",
                source="t",
                body={"i": i},
            )
        )
    return entries


def test_an_intact_chain_with_checkpoints_verifies() -> None:
    entries = chain(6)
    checkpoints = [sign_checkpoint(KEY, entries[2], NOW), sign_checkpoint(KEY, entries[5], NOW)]
    result = verify(entries, checkpoints, KEY.public_key())
    assert result.ok and (result.entries, result.checkpoints) == (6, 2)


def test_a_changed_entry_is_named() -> None:
    entries = chain(6)
    entries[3] = replace(entries[3], body='{"i":99}')
    result = verify(entries, [], KEY.public_key())
    assert result.first_bad_seq == 4 and "content does not match" in result.problem


def test_a_deleted_entry_is_named() -> None:
    entries = chain(6)
    del entries[2]
    assert verify(entries, [], KEY.public_key()).first_bad_seq == 3


def test_a_rewritten_chain_is_caught_by_the_signed_checkpoint() -> None:
    entries = chain(6)
    checkpoint = sign_checkpoint(KEY, entries[4], NOW)
    # Rewrite entry 2 and re-hash everything after it: links hold, only the signature can tell.
    forged = entries[:1]
    for original in entries[1:]:
        body = {"i": 99} if original.seq == 2 else {"i": original.seq - 1}
        forged.append(
            chain_entry(forged[-1], recorded_at=NOW, kind="test", event_id=original.event_id, source="t", body=body)
        )
    result = verify(forged, [checkpoint], KEY.public_key())
    assert not result.ok and result.first_bad_seq == 5 and "signed checkpoint" in result.problem


def test_a_checkpoint_signed_with_another_key_is_refused() -> None:
    entries = chain(3)
    result = verify(entries, [sign_checkpoint(Ed25519PrivateKey.generate(), entries[2], NOW)], KEY.public_key())
    assert result.first_bad_seq == 3 and "invalid signature" in result.problem
