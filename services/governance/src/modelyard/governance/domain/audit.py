"""The tamper-evident audit log: a SHA-256 hash chain of entries with Ed25519-signed checkpoints of its head.

Each entry's hash covers its content and the previous entry's hash, so changing, inserting or deleting an entry
breaks every later link; an attacker who rewrites the rest of the chain too cannot forge the signed checkpoints
without the private key. Deleting the checkpoints over a rewrite or a cut is caught because checkpoints are due at
least every `checkpoint_every` entries and at the head, and because they are also published outside the database
(`published`: the checkpoints topic, exports). `verify` walks the chain in order and names the first entry that
does not hold.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

# The same fingerprint names a key wherever it signs (events, checkpoints): keys rotate, ids tell them apart.
from modelyard.events.signing import key_id

GENESIS_HASH = "0" * 64
_REWRITTEN = "the chain was rewritten up to here"


@dataclass(frozen=True)
class AuditEntry:
    seq: int  # 1, 2, 3, ... without gaps
    recorded_at: datetime
    kind: str  # the event type (full protobuf name) or a governance decision name
    event_id: str
    source: str
    model_name: str
    version: int  # 0 when the entry is not about one version
    request_id: str
    body: str  # canonical JSON of the event payload
    prev_hash: str
    hash: str

    def content(self) -> dict[str, Any]:
        fields = asdict(self)
        fields.pop("hash")
        fields["recorded_at"] = self.recorded_at.isoformat()
        return fields


@dataclass(frozen=True)
class Checkpoint:
    seq: int  # the entry whose hash is the signed head
    head_hash: str
    signed_at: datetime
    key_id: str
    signature: str  # hex

    def message(self) -> bytes:
        return f"modelyard-audit-checkpoint:{self.seq}:{self.head_hash}:{self.signed_at.isoformat()}".encode()


@dataclass(frozen=True)
class Verification:
    entries: int
    checkpoints: int
    first_bad_seq: int | None = None
    problem: str = ""
    published: int = 0  # published checkpoints compared with the database
    foreign: int = 0  # published checkpoints signed with another key: not compared

    @property
    def ok(self) -> bool:
        return not self.problem


def canonical_json(value: Mapping[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def entry_hash(content: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(content).encode()).hexdigest()


def chain_entry(
    previous: AuditEntry | None,
    *,
    recorded_at: datetime,
    kind: str,
    event_id: str,
    source: str,
    model_name: str = "",
    version: int = 0,
    request_id: str = "",
    body: Mapping[str, Any],
) -> AuditEntry:
    """The next entry after `previous` (None: the first one)."""
    draft = AuditEntry(
        seq=previous.seq + 1 if previous else 1,
        recorded_at=recorded_at,
        kind=kind,
        event_id=event_id,
        source=source,
        model_name=model_name,
        version=version,
        request_id=request_id,
        body=canonical_json(body),
        prev_hash=previous.hash if previous else GENESIS_HASH,
        hash="",
    )
    return AuditEntry(**{**asdict(draft), "hash": entry_hash(draft.content())})


def sign_checkpoint(key: Ed25519PrivateKey, head: AuditEntry, now: datetime) -> Checkpoint:
    unsigned = Checkpoint(head.seq, head.hash, now, key_id(key.public_key()), "")
    return Checkpoint(**{**asdict(unsigned), "signature": key.sign(unsigned.message()).hex()})


def verify(
    entries: Iterable[AuditEntry],
    checkpoints: Iterable[Checkpoint],
    public_key: Ed25519PublicKey,
    *,
    checkpoint_every: int,
    published: Iterable[Checkpoint] = (),
) -> Verification:
    """Check every link and every checkpoint, that signed checkpoints are at most `checkpoint_every` entries apart
    and one covers the head, and that each `published` checkpoint (signed by this key) is in the database and
    matches its entry. Entries must come in seq order."""
    stored = _by_seq(checkpoints)
    total = sum(len(c) for c in stored.values())
    own_key = key_id(public_key)
    published = list(published)
    claims = _by_seq(c for c in published if c.key_id == own_key)
    compared = sum(len(c) for c in claims.values())

    def result(entries_seen: int, first_bad_seq: int | None = None, problem: str = "") -> Verification:
        return Verification(entries_seen, total, first_bad_seq, problem, compared, len(published) - compared)

    signatures = {c.signature for found in stored.values() for c in found}
    for claim in (c for found in claims.values() for c in found):
        if not is_signed_by(public_key, claim):
            return result(0, None, f"the checkpoint published for entry {claim.seq} {_signed(claim)} is forged")
    previous_hash, expected_seq, count, signed_through = GENESIS_HASH, 1, 0, 0
    for entry in entries:
        count += 1
        checkpointed = stored.pop(entry.seq, [])
        problem = (
            _link_problem(entry, expected_seq, previous_hash)
            or _checkpoint_problem(checkpointed, entry, public_key)
            or _published_problem(claims.pop(entry.seq, []), entry, signatures)
        )
        if problem:
            return result(count, min(entry.seq, expected_seq), problem)
        if checkpointed:
            signed_through = entry.seq
        elif entry.seq - signed_through > checkpoint_every:
            problem = (
                f"entries {signed_through + 1} to {entry.seq}: no signed checkpoint covers them (one is due at least "
                f"every {checkpoint_every} entries; checkpoints were deleted, or never signed)"
            )
            return result(count, signed_through + 1, problem)
        previous_hash, expected_seq = entry.hash, entry.seq + 1
    head = expected_seq - 1
    if claims:
        cut = claims[min(claims)][0]
        problem = (
            f"the chain ends at entry {head}, but a checkpoint of entry {cut.seq} was published {_signed(cut)}: "
            f"entries {head + 1} to {cut.seq} were cut off"
        )
        return result(count, head + 1, problem)
    if stored:
        dangling = min(stored)
        return result(count, head + 1, f"checkpoint at entry {dangling}: no such entry (the chain ends at {head})")
    if head > signed_through:
        return result(count, signed_through + 1, f"entries {signed_through + 1} to {head}: the head is not signed")
    return result(count)


def _by_seq(checkpoints: Iterable[Checkpoint]) -> dict[int, list[Checkpoint]]:
    by_seq: dict[int, list[Checkpoint]] = {}
    for checkpoint in checkpoints:
        by_seq.setdefault(checkpoint.seq, []).append(checkpoint)
    return by_seq


def _signed(checkpoint: Checkpoint) -> str:
    return f"(signed at {checkpoint.signed_at.isoformat()})"


def is_signed_by(public_key: Ed25519PublicKey, checkpoint: Checkpoint) -> bool:
    """Whether `checkpoint`'s signature is this key's over its message."""
    try:
        public_key.verify(bytes.fromhex(checkpoint.signature), checkpoint.message())
    except (InvalidSignature, ValueError):
        return False
    return True


def _link_problem(entry: AuditEntry, expected_seq: int, previous_hash: str) -> str:
    if entry.seq != expected_seq:
        return f"entry {entry.seq}: expected entry {expected_seq} (entries missing or reordered)"
    if entry.prev_hash != previous_hash:
        return f"entry {entry.seq}: its link to the previous entry is broken"
    if entry_hash(entry.content()) != entry.hash:
        return f"entry {entry.seq}: its content does not match its hash"
    return ""


def _checkpoint_problem(checkpoints: list[Checkpoint], entry: AuditEntry, public_key: Ed25519PublicKey) -> str:
    for checkpoint in checkpoints:
        if not is_signed_by(public_key, checkpoint):
            return f"entry {entry.seq}: the checkpoint {_signed(checkpoint)} has an invalid signature"
        if checkpoint.head_hash != entry.hash:
            return f"entry {entry.seq}: its hash differs from the signed checkpoint ({_REWRITTEN})"
    return ""


def _published_problem(claims: list[Checkpoint], entry: AuditEntry, stored_signatures: set[str]) -> str:
    for claim in claims:
        if claim.head_hash != entry.hash:
            return f"entry {entry.seq}: its hash differs from the checkpoint published {_signed(claim)} ({_REWRITTEN})"
        if claim.signature not in stored_signatures:
            return f"entry {entry.seq}: the checkpoint published {_signed(claim)} is missing from the database"
    return ""


def export_records(
    entries: Iterable[AuditEntry], wanted: Callable[[AuditEntry], bool], checkpoint: Checkpoint, public_key_hex: str
) -> Iterator[dict[str, Any]]:
    """A self-verifying slice: a header, then every entry from the first wanted one up to the signed
    `checkpoint` — wanted ones whole, the others as bare links (seq and hashes, no content) — then the checkpoint.
    Links keep the chain provable without disclosing entries outside the slice."""
    yield {"type": "header", "public_key": public_key_hex, "key_id": checkpoint.key_id}
    started = False
    for entry in entries:
        if entry.seq > checkpoint.seq:
            break
        started = started or wanted(entry)
        if started and wanted(entry):
            yield {"type": "entry", **entry.content(), "hash": entry.hash}
        elif started:
            yield {"type": "link", "seq": entry.seq, "prev_hash": entry.prev_hash, "hash": entry.hash}
    yield {"type": "checkpoint", **asdict(checkpoint), "signed_at": checkpoint.signed_at.isoformat()}


def verify_export(records: Iterable[dict[str, Any]], trusted_key_id: str | None = None) -> Verification:
    """Check an exported slice on its own: each entry's hash, each link, and the checkpoint's signature over the
    last hash. Pass `trusted_key_id` to also insist on the key you know (the header's key proves only itself)."""
    header: dict[str, Any] | None = None
    previous: str | None = None
    count = 0
    for record in records:
        kind = record.get("type")
        if kind == "header":
            header = record
            continue
        if header is None:
            return Verification(count, 0, None, "the export has no header")
        if kind == "checkpoint":
            return _verify_export_checkpoint(record, header, previous, count, trusted_key_id)
        count += 1
        seq = int(record["seq"])
        if previous is not None and record["prev_hash"] != previous:
            return Verification(count, 0, seq, f"entry {seq}: its link to the previous entry is broken")
        if kind == "entry":
            content = {k: v for k, v in record.items() if k not in ("type", "hash")}
            if entry_hash(content) != record["hash"]:
                return Verification(count, 0, seq, f"entry {seq}: its content does not match its hash")
        previous = record["hash"]
    return Verification(count, 0, None, "the export ends without a checkpoint")


def _verify_export_checkpoint(
    record: dict[str, Any], header: dict[str, Any], head: str | None, count: int, trusted_key_id: str | None
) -> Verification:
    checkpoint = Checkpoint(
        seq=int(record["seq"]),
        head_hash=record["head_hash"],
        signed_at=datetime.fromisoformat(record["signed_at"]),
        key_id=record["key_id"],
        signature=record["signature"],
    )
    public_key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(header["public_key"]))
    if trusted_key_id is not None and key_id(public_key) != trusted_key_id:
        return Verification(count, 1, None, f"signed with key {key_id(public_key)}, not the trusted {trusted_key_id}")
    if not is_signed_by(public_key, checkpoint):
        return Verification(count, 1, checkpoint.seq, "the checkpoint's signature is invalid")
    if head != checkpoint.head_hash:
        return Verification(count, 1, checkpoint.seq, "the last entry is not the signed head")
    return Verification(count, 1)
