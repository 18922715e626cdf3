"""Governance use cases: the audit trail (recording, export, verification, signed checkpoints) and model cards."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from google.protobuf.json_format import MessageToDict

from modelyard.auth import Principal
from modelyard.contracts.events.v1 import serving_events_pb2
from modelyard.events.envelope import Event
from modelyard.governance.domain import audit, card
from modelyard.governance.domain.errors import (
    AuditTampered,
    NotFound,
)
from modelyard.governance.handlers.base import (
    READ_AUDIT,
    READ_CARDS,
    UseCases,
    log,
)


class AuditUseCases(UseCases):
    def record_event(self, event: Event) -> None:
        """Append any Modelyard event to the audit log (a no-op for one already there: at-least-once delivery)."""
        body = audited_body(event)
        version = version_of(body)
        with self.store.unit() as unit:
            unit.audit(
                kind=event.type,
                event_id=event.id,
                source=event.source,
                time=event.time,
                model_name=event.key,
                version=version,
                request_id=str(body.get("request_id", "")),
                body=body,
            )

    def audit_entries(
        self,
        principal: Principal,
        *,
        model_name: str | None = None,
        version: int | None = None,
        request_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Iterator[audit.AuditEntry]:
        principal.require("query the audit trail", READ_AUDIT)
        return self.store.audit_entries(
            model_name=model_name, version=version, request_id=request_id, since=since, until=until
        )

    def verify_audit(self, principal: Principal, published: Sequence[audit.Checkpoint] = ()) -> audit.Verification:
        """Sign the head first (so that a healthy chain is covered up to it), then check the chain up to that head
        against its stored checkpoints and the `published` ones. A signer's refusal is tampering: it is reported
        after what the walk found, when it says something else."""
        principal.require("verify the audit trail", READ_AUDIT)
        refusal: AuditTampered | None = None
        try:
            head = self.store.checkpoint()
        except AuditTampered as tampered:
            head, refusal = None, tampered
        # Entries appended after the head was signed are the next checkpoint's business, not this walk's.
        through = head.seq if head is not None else None
        found = audit.verify(
            self.store.audit_entries(through_seq=through),
            [c for c in self.store.checkpoints() if through is None or c.seq <= through],
            self.audit_key,
            checkpoint_every=self.checkpoint_every,
            published=published,
        )
        if refusal is None or str(refusal) == found.problem:
            return found
        refused = f"the signer refuses to sign the head: {refusal}"
        problem = f"{found.problem}; {refused}" if found.problem else refused
        return replace(found, first_bad_seq=min(refusal.seq, found.first_bad_seq or refusal.seq), problem=problem)

    def checkpoint(self) -> audit.Checkpoint | None:
        return self.store.checkpoint()

    def recover_signer(self, published: Sequence[audit.Checkpoint]) -> audit.Checkpoint | None:
        """Before the signer signs anything: start it from the latest checkpoint it signed, among those published
        outside the database and those stored in it."""
        recovered = self.store.recover_signer(published)
        where = f"entry {recovered.seq} signed at {recovered.signed_at.isoformat()}" if recovered else "the start"
        log.info("audit signer recovered: it signs only a chain that extends %s", where)
        return recovered

    def export_audit(
        self, principal: Principal, model_name: str, since: datetime | None = None, until: datetime | None = None
    ) -> list[str]:
        """A self-verifying JSON Lines slice of the entries about `model_name` in [since, until]."""
        principal.require("export the audit trail", READ_AUDIT)
        checkpoint = self.store.checkpoint()  # sign the head now, so that the slice ends at a signed checkpoint
        if checkpoint is None:
            raise NotFound("the audit trail is empty")

        def wanted(entry: audit.AuditEntry) -> bool:
            in_time = (since is None or entry.recorded_at >= since) and (until is None or entry.recorded_at <= until)
            return entry.model_name == model_name and in_time

        public_key = self.audit_key.public_bytes_raw().hex()
        entries = self.store.audit_entries(through_seq=checkpoint.seq)
        records = audit.export_records(entries, wanted, checkpoint, public_key)
        return [audit.canonical_json(record) for record in records]

    def model_card(self, principal: Principal, model_name: str, version: int) -> dict[str, Any]:
        principal.require("read model cards", READ_CARDS)
        facts = self.catalog.get_version(model_name, version)
        with self.store.unit() as unit:
            request = unit.latest_request_for(model_name, version)
            history = unit.deployment_history(model_name, version)
        return card.build_card(facts, request, history)


def audited_body(event: Event) -> dict[str, Any]:
    """What the audit keeps of an event: all of it, but for prediction traffic a reference (the batch's digest and
    counts). The stream is the record of the predictions themselves; copying every tensor into the chain grew the
    audit database by gigabytes an hour, while the digest still proves which batch was seen."""
    if isinstance(event.payload, serving_events_pb2.PredictionBatch):
        batch = event.payload
        digest = hashlib.sha256(batch.SerializeToString(deterministic=True)).hexdigest()
        records, codes = len(batch.request_ids), batch.status_codes
        return {
            "model_name": batch.model_name,
            "batch_sha256": digest,
            "records": records,
            "records_by_version": {str(batch.version.version): records},
            "errors": sum(1 for (code,) in struct.iter_unpack("<i", codes[: len(codes) // 4 * 4]) if code != 0),
        }
    return MessageToDict(event.payload, preserving_proto_field_name=True)


def version_of(body: dict[str, Any]) -> int:
    """The version an event is about, wherever its payload keeps it (0 when it is not about one version)."""
    for key in ("version", "plan", "rolled_back"):
        value = body.get(key)
        if isinstance(value, dict):
            found = value.get("version") or (value.get("primary") or {}).get("version")
            if found:
                return int(found)
        elif isinstance(value, int | str) and str(value).isdigit():
            return int(value)
    return int(body.get("to_version", 0) or 0)
