"""Prediction traces (issue 16, provenance) through the bootstrap seam: real handlers and SQLite store, the registry,
evaluator and the monitor's prediction log faked. A trace names the approval behind the version that answered,
is signed with the audit key and verifies offline against an audit export; any change to it does not."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from modelyard.governance.bootstrap import GovernanceParts, build
from modelyard.governance.domain.errors import NotFound
from modelyard.governance.domain.provenance import PredictionFacts, verify_trace
from modelyard.governance.testing import (
    BOB,
    CAROL,
    DAVE,
    EVE,
    FixedEvaluator,
    InMemoryCatalog,
    facts,
    governance_settings,
)

pytestmark = pytest.mark.unit


class FakePredictionLog:
    def __init__(self) -> None:
        self.logged: dict[str, PredictionFacts] = {}

    def prediction(self, request_id: str) -> PredictionFacts:
        if request_id not in self.logged:
            raise NotFound(f"monitor: no prediction with request id {request_id!r} in the log")
        return self.logged[request_id]


@pytest.fixture
def traced(tmp_path: Path) -> Iterator[tuple[GovernanceParts, FakePredictionLog, InMemoryCatalog]]:
    log, catalog = FakePredictionLog(), InMemoryCatalog()
    parts = build(governance_settings(tmp_path), catalog=catalog, evaluator=FixedEvaluator(), predictions=log)
    parts.handlers.recover_signer([])
    yield parts, log, catalog
    parts.store.engine.dispose()


def approved_v1(parts: GovernanceParts, log: FakePredictionLog, catalog: InMemoryCatalog) -> PredictionFacts:
    version = catalog.add(facts("credit", 1))
    handlers = parts.handlers
    request = handlers.request_promotion(BOB, "credit", 1, "production")
    handlers.run_pending_checks()
    handlers.approve(CAROL, request.id)
    handlers.approve(DAVE, request.id)
    plan = handlers.deployment_plan(EVE, "credit")
    monitor = {"prediction": {"request_id": "r-1"}, "window": {"window_id": "7.0"}, "incidents": []}
    log.logged["r-1"] = PredictionFacts(
        "r-1", "credit", 1, version.ref.digest, plan.revision, datetime.now(UTC), monitor
    )
    return log.logged["r-1"]


def export(parts: GovernanceParts) -> list[dict[str, Any]]:
    return [json.loads(line) for line in parts.handlers.export_audit(EVE, "credit")]


def test_a_trace_names_the_approval_behind_the_prediction_and_verifies_offline(
    traced: tuple[GovernanceParts, FakePredictionLog, InMemoryCatalog],
) -> None:
    parts, log, catalog = traced
    logged = approved_v1(parts, log, catalog)
    text, signing_key = parts.handlers.trace_prediction(EVE, "r-1")
    document = json.loads(text)

    assert (document["model_name"], document["version"], document["artifact_digest"]) == ("credit", 1, logged.digest)
    assert document["plan_revision"] == logged.plan_revision and document["plan"]["primary"]["version"] == 1
    promotion = document["promotion"]
    assert [a["approver"] for a in promotion["approvals"]] == ["carol", "dave"] and promotion["digest_matches"]
    assert promotion["policy_hash"] == parts.policy.hash and promotion["requested_by"] == "bob"
    assert {c["name"] for c in promotion["checks"]} == {"lineage_metrics", "signature", "model_card"}
    assert document["monitor"]["window"]["window_id"] == "7.0"
    kinds = [e["kind"] for e in document["audit_entries"]]
    assert kinds and kinds[-1].endswith("DeploymentApproved")
    assert document["key_id"] == signing_key == parts.store.signer.key_id  # type: ignore[attr-defined]
    assert verify_trace(document, export(parts)).ok


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: d["promotion"]["approvals"].pop(), "changed after it was signed"),
        (lambda d: d.update(version=2), "changed after it was signed"),
        (lambda d: d.update(signature="00" * 64), "changed after it was signed"),
        (lambda d: d.update(key_id="someone-else"), "the audit export carries key"),
        (lambda d: d.pop("signature"), "not a signed prediction trace"),
    ],
)
def test_a_changed_trace_does_not_verify(
    traced: tuple[GovernanceParts, FakePredictionLog, InMemoryCatalog], change: Any, problem: str
) -> None:
    parts, log, catalog = traced
    approved_v1(parts, log, catalog)
    document = json.loads(parts.handlers.trace_prediction(EVE, "r-1")[0])
    change(document)
    assert problem in verify_trace(document, export(parts)).problem


def test_a_trace_does_not_verify_against_an_export_without_its_entries_or_a_forged_one(
    traced: tuple[GovernanceParts, FakePredictionLog, InMemoryCatalog],
) -> None:
    parts, log, catalog = traced
    approved_v1(parts, log, catalog)
    document = json.loads(parts.handlers.trace_prediction(EVE, "r-1")[0])
    records = export(parts)
    cited = document["audit_entries"][0]["seq"]
    as_link = [
        {"type": "link", "seq": r["seq"], "prev_hash": r["prev_hash"], "hash": r["hash"]}
        if r.get("type") == "entry" and r["seq"] == cited
        else r
        for r in records
    ]
    assert f"audit entry {cited} that the trace cites is not in" in verify_trace(document, as_link).problem
    forged = [dict(r, body='{"approvers":["mallory"]}') if r.get("seq") == cited else r for r in records]
    assert "the audit export does not verify" in verify_trace(document, forged).problem


def test_an_unknown_request_id_is_not_found(traced: tuple[GovernanceParts, FakePredictionLog, InMemoryCatalog]) -> None:
    parts, _, _ = traced
    with pytest.raises(NotFound, match="no prediction with request id 'nope'"):
        parts.handlers.trace_prediction(EVE, "nope")
