"""Audit checkpoints published outside governance's database, for `modelyard audit verify --against-...`: the
checkpoint records of an export made earlier, or every record of the checkpoints topic. Governance checks their
signatures with its key and compares them with its database."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from modelyard.contracts.events.v1.governance_events_pb2 import AuditCheckpointSigned

_FIELDS = ("seq", "head_hash", "signed_at", "key_id", "signature")


class BadExport(ValueError):
    """The file is not an audit export; the message says where and why, without echoing its content."""


def from_export(path: Path) -> list[AuditCheckpointSigned]:
    """The checkpoint records of an export file (JSON Lines, as `modelyard audit export` writes)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadExport(f"cannot read {path.name}: {type(exc).__name__}") from None
    checkpoints = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise BadExport(f"{path.name} line {number}: not JSON") from None
        if not isinstance(record, dict) or "type" not in record:
            raise BadExport(f"{path.name} line {number}: not an audit export record (no type)")
        if record["type"] == "checkpoint":
            checkpoints.append(_checkpoint(record, f"{path.name} line {number}"))
    if not checkpoints:
        raise BadExport(f"{path.name} has no checkpoint record: not an audit export")
    return checkpoints


def _checkpoint(record: dict[str, object], where: str) -> AuditCheckpointSigned:
    missing = [name for name in _FIELDS if name not in record]
    if missing:
        raise BadExport(f"{where}: the checkpoint lacks {', '.join(missing)}")
    try:
        message = AuditCheckpointSigned(
            seq=int(str(record["seq"])),
            head_hash=str(record["head_hash"]),
            key_id=str(record["key_id"]),
            signature=str(record["signature"]),
        )
        message.signed_at.FromDatetime(datetime.fromisoformat(str(record["signed_at"])))
    except (ValueError, OverflowError):
        raise BadExport(f"{where}: the checkpoint's seq or signed_at is malformed") from None
    return message


async def from_topic(bootstrap: str) -> list[AuditCheckpointSigned]:
    """Every checkpoint record on `modelyard.governance.checkpoints`, in order."""
    from modelyard.events import topics  # aiokafka is slow to import: only for this command
    from modelyard.kafka.reader import read_to_end

    events = await read_to_end(bootstrap, topics.GOVERNANCE_CHECKPOINTS)
    return [e.payload for e in events if isinstance(e.payload, AuditCheckpointSigned)]
