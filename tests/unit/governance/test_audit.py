from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from modelyard.governance.domain.audit import AuditEntry, Checkpoint, chain_entry, sign_checkpoint, verify

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
    result = verify(entries, checkpoints, KEY.public_key(), checkpoint_every=3)
    assert result.ok and (result.entries, result.checkpoints) == (6, 2)


def test_a_changed_entry_is_named() -> None:
    entries = chain(6)
    entries[3] = replace(entries[3], body='{"i":99}')
    result = verify(entries, [], KEY.public_key(), checkpoint_every=10)
    assert result.first_bad_seq == 4 and "content does not match" in result.problem


def test_a_deleted_entry_is_named() -> None:
    entries = chain(6)
    del entries[2]
    assert verify(entries, [], KEY.public_key(), checkpoint_every=10).first_bad_seq == 3


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
    result = verify(forged, [checkpoint], KEY.public_key(), checkpoint_every=10)
    assert not result.ok and result.first_bad_seq == 5 and "signed checkpoint" in result.problem


def test_a_checkpoint_signed_with_another_key_is_refused() -> None:
    entries = chain(3)
    other = sign_checkpoint(Ed25519PrivateKey.generate(), entries[2], NOW)
    result = verify(entries, [other], KEY.public_key(), checkpoint_every=10)
    assert result.first_bad_seq == 3 and "invalid signature" in result.problem


def signed(entries: list[AuditEntry], *seqs: int) -> list[Checkpoint]:
    return [sign_checkpoint(KEY, entries[seq - 1], NOW) for seq in seqs]


def check(
    entries: list[AuditEntry], stored: list[Checkpoint], published: list[Checkpoint] = ()
) -> tuple[int | None, str]:
    result = verify(entries, stored, KEY.public_key(), checkpoint_every=3, published=published)
    return result.first_bad_seq, result.problem


def test_checkpoints_are_due_every_checkpoint_every_entries() -> None:
    entries = chain(8)
    assert check(entries, signed(entries, 3, 6, 8)) == (None, "")
    assert check(entries, signed(entries, 2, 5, 8)) == (None, "")  # at most 3 apart, not at multiples of 3
    first_bad, problem = check(entries, signed(entries, 3, 8))  # the one at 6 was deleted
    assert first_bad == 4 and problem.startswith("entries 4 to 7: no signed checkpoint covers them")


def test_the_head_must_be_signed() -> None:
    entries = chain(8)
    assert check(entries, signed(entries, 3, 6)) == (7, "entries 7 to 8: the head is not signed")
    assert check([], []) == (None, "")


def test_a_rewrite_whose_checkpoints_were_dropped_is_caught() -> None:
    entries = chain(8)
    # Rewrite entry 5 on and re-hash the rest; delete the checkpoints from 5 on (the one at 6 and the head's).
    forged = entries[:4]
    for original in entries[4:]:
        forged.append(
            chain_entry(forged[-1], recorded_at=NOW, kind="test", event_id=original.event_id, source="t", body={})
        )
    assert check(forged, signed(entries, 3)) == (
        4,
        "entries 4 to 7: no signed checkpoint covers them (one is due "
        "at least every 3 entries; checkpoints were deleted, or never signed)",
    )
    first_bad, problem = check(forged, signed(entries, 3), published=signed(entries, 3, 6))
    assert first_bad == 6 and "its hash differs from the checkpoint published (signed at" in problem


def test_published_checkpoints_tell_a_truncation() -> None:
    entries = chain(8)
    stored = signed(entries, 3, 6)
    first_bad, problem = check(entries[:6], stored, published=[*stored, *signed(entries, 8)])
    assert first_bad == 7
    assert problem.startswith("the chain ends at entry 6, but a checkpoint of entry 8 was published (signed at")
    assert problem.endswith("entries 7 to 8 were cut off")


def test_a_published_checkpoint_missing_from_the_database_is_named() -> None:
    entries = chain(6)
    stored = signed(entries, 3, 6)
    # The database's checkpoint of entry 3 is not the one published (deleted; another, signed later, in its place).
    resigned = sign_checkpoint(KEY, entries[2], NOW + timedelta(seconds=1))
    first_bad, problem = check(entries, [resigned, stored[1]], published=stored)
    assert first_bad == 3 and problem.endswith("is missing from the database")


def test_published_checkpoints_of_other_keys_are_counted_not_compared_and_forged_ones_are_named() -> None:
    entries = chain(6)
    stored = signed(entries, 3, 6)
    foreign = sign_checkpoint(Ed25519PrivateKey.generate(), replace(entries[5], hash="f" * 64), NOW)
    result = verify(entries, stored, KEY.public_key(), checkpoint_every=3, published=[*stored, foreign])
    assert result.ok and (result.published, result.foreign) == (2, 1)
    forged = replace(stored[1], head_hash="e" * 64)
    first_bad, problem = check(entries, stored, published=[forged])
    assert first_bad is None and problem.startswith("the checkpoint published for entry 6 (signed at")
    assert problem.endswith("is forged")
