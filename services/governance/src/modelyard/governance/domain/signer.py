"""The audit signer: signs checkpoints of the chain's head, but only of a chain that extends what it signed before.

It trusts its own memory of the last checkpoint it signed, not the database: before each signature it re-verifies
the entries from that checkpoint to the head (the entry at the checkpoint's seq must still have the signed hash,
every link after it must hold) and refuses otherwise, so a rewritten or cut chain is never freshly signed. After a
restart it starts from the latest checkpoint it really signed among those published outside the database (the
checkpoints topic) and those stored in it (genuine signatures, though the database may have lost the later ones);
until then it signs nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from modelyard.events.signing import key_id
from modelyard.governance.domain.audit import (
    GENESIS_HASH,
    AuditEntry,
    Checkpoint,
    entry_hash,
    is_signed_by,
    sign_checkpoint,
)
from modelyard.governance.domain.errors import AuditTampered, SignerNotReady

Clock = Callable[[], datetime]
EntryReader = Callable[[int, int], Iterable[AuditEntry]]


class AuditSigner:
    def __init__(self, key: Ed25519PrivateKey, clock: Clock = lambda: datetime.now(UTC)) -> None:
        self._key = key
        self._clock = clock
        self.public_key: Ed25519PublicKey = key.public_key()
        self.key_id = key_id(self.public_key)
        self._last: Checkpoint | None = None
        self._recovered = threading.Event()
        self._lock = threading.Lock()

    def sign_document(self, message: bytes) -> bytes:
        """An Ed25519 signature of `message` with the audit key (documents that verify against audit exports)."""
        return self._key.sign(message)

    @property
    def last(self) -> Checkpoint | None:
        """The latest checkpoint this signer knows it signed."""
        with self._lock:
            return self._last

    def wait_recovered(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for `recover`; whether it has happened."""
        return self._recovered.wait(timeout_s)

    def recover(self, candidates: Iterable[Checkpoint]) -> Checkpoint | None:
        """Start from the latest of `candidates` that this key really signed (forged, foreign or unreadable ones are
        ignored); with none (a fresh install), from the start of the chain. Then signing may begin."""
        latest = next((c for c in sorted(candidates, key=lambda c: -c.seq) if self._signed_by_me(c)), None)
        with self._lock:
            if latest is not None and (self._last is None or latest.seq > self._last.seq):
                self._last = latest
            self._recovered.set()
            return self._last

    def sign(self, head: AuditEntry | None, read: EntryReader, every: int) -> list[Checkpoint]:
        """Checkpoints of the chain that ends at `head`: one for each entry at a multiple of `every` after the last
        checkpoint (those a pause or a restart left unsigned) and one for the head; none when the last checkpoint
        already covers the head. `read(first, last)` gives the chain's entries from seq `first` to `last` in order:
        those from the last checkpoint's entry (from entry 1 when there is none) to the head are re-verified first.
        Nothing is remembered until `signed` is told the checkpoints were stored.

        Raises AuditTampered when the chain does not extend the last checkpoint, SignerNotReady before `recover`."""
        if not self._recovered.is_set():
            raise SignerNotReady("the audit signer has not recovered its last published checkpoint yet")
        last = self.last
        if last is not None and (head is None or head.seq < last.seq):
            at = head.seq if head is not None else 0
            raise AuditTampered(
                f"the chain ends at entry {at}, behind entry {last.seq} signed at {last.signed_at.isoformat()}: "
                f"entries {at + 1} to {last.seq} were cut off",
                at + 1,
            )
        if head is None:
            return []
        due: list[AuditEntry] = []
        previous: AuditEntry | None = None
        for entry in read(last.seq if last is not None else 1, head.seq):
            _check_extends(last, previous, entry)
            if entry.seq % every == 0 and (last is None or entry.seq > last.seq):
                due.append(entry)
            previous = entry
        if previous is None or previous.seq != head.seq or previous.hash != head.hash:
            gap = previous.seq + 1 if previous is not None else (last.seq if last is not None else 1)
            raise AuditTampered(f"entries {gap} to {head.seq}, the head, are missing from the chain", gap)
        if last is not None and head.seq == last.seq:
            return []
        if not due or due[-1].seq != head.seq:
            due.append(head)
        now = self._clock()
        return [sign_checkpoint(self._key, entry, now) for entry in due]

    def signed(self, checkpoints: Iterable[Checkpoint]) -> None:
        """Remember checkpoints once stored and queued for publication (after their transaction committed)."""
        with self._lock:
            for checkpoint in checkpoints:
                if self._last is None or checkpoint.seq > self._last.seq:
                    self._last = checkpoint

    def _signed_by_me(self, checkpoint: Checkpoint) -> bool:
        return checkpoint.key_id == self.key_id and is_signed_by(self.public_key, checkpoint)


def _check_extends(last: Checkpoint | None, previous: AuditEntry | None, entry: AuditEntry) -> None:
    """Raise AuditTampered unless `entry` follows `previous` (or, first, starts from `last`) and matches its hash."""
    if entry_hash(entry.content()) != entry.hash:
        raise AuditTampered(f"entry {entry.seq}: its content does not match its hash", entry.seq)
    if previous is not None:
        if entry.seq != previous.seq + 1 or entry.prev_hash != previous.hash:
            raise AuditTampered(f"entry {entry.seq}: its link to entry {previous.seq} is broken", entry.seq)
    elif last is None:
        if entry.seq != 1 or entry.prev_hash != GENESIS_HASH:
            raise AuditTampered(f"entry {entry.seq}: the chain does not start at entry 1", entry.seq)
    elif entry.seq != last.seq:
        raise AuditTampered(
            f"entry {last.seq}, signed at {last.signed_at.isoformat()}, is missing (the chain was rewritten)", last.seq
        )
    elif entry.hash != last.head_hash:
        raise AuditTampered(
            f"entry {last.seq}: its hash differs from the one signed at {last.signed_at.isoformat()} "
            "(the chain was rewritten up to here)",
            last.seq,
        )
