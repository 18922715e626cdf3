"""The use cases through the bootstrap seam: real handlers and SQLite store, registry and evaluator faked."""

import hashlib
import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import sqlalchemy as sa

from modelyard.auth import PermissionDenied, Principal
from modelyard.contracts.events.v1 import common_pb2, governance_events_pb2, monitor_events_pb2, serving_events_pb2
from modelyard.contracts.governance.v1 import governance_service_pb2 as gpb
from modelyard.events import columns, topics
from modelyard.events.envelope import Event
from modelyard.governance.adapters.sql import schema
from modelyard.governance.bootstrap import GovernanceParts
from modelyard.governance.domain.errors import (
    AlreadyExists,
    CatalogUnavailable,
    FailedPrecondition,
    NotFound,
    SeparationOfDuties,
)
from modelyard.governance.domain.workflow import RequestState
from modelyard.governance.entrypoints.api import GovernanceApi
from modelyard.governance.testing import ALICE, BOB, CAROL, DAVE, EVE, InMemoryCatalog, facts

pytestmark = pytest.mark.unit


def decisions(governance: GovernanceParts) -> list[str]:
    with governance.store.engine.connect() as connection:
        outbox = schema.outbox
        query = sa.select(outbox.c.event_type).where(outbox.c.topic == topics.GOVERNANCE_DECISIONS.name)
        return list(connection.scalars(query.order_by(outbox.c.id)))


def promote(governance: GovernanceParts, catalog: InMemoryCatalog, version: int) -> str:
    catalog.add(facts("credit", version))
    handlers = governance.handlers
    request = handlers.request_promotion(BOB, "credit", version, "production")
    assert handlers.run_pending_checks() == 1
    assert handlers.get_request(EVE, request.id).state is RequestState.AWAITING_APPROVAL
    handlers.approve(CAROL, request.id)
    assert handlers.approve(DAVE, request.id).state is RequestState.APPROVED
    return request.id


def incident(
    version: int,
    severity: int = monitor_events_pb2.SEVERITY_CRITICAL,
    state: int = monitor_events_pb2.IncidentChanged.STATE_OPENED,
) -> monitor_events_pb2.IncidentChanged:
    return monitor_events_pb2.IncidentChanged(
        incident_id=f"inc-{version}",
        state=state,
        version=common_pb2.ModelVersionRef(model_name="credit", version=version),
        signal=monitor_events_pb2.SIGNAL_PERFORMANCE,
        severity=severity,
    )


def test_promotion_checks_approvals_plan_alias_and_decisions(
    governance: GovernanceParts, catalog: InMemoryCatalog
) -> None:
    promote(governance, catalog, 1)
    plan = governance.handlers.deployment_plan(EVE, "credit")
    assert (plan.primary.version, plan.canary, plan.revision) == (1, None, 1)
    assert catalog.moves == [("credit", "production", 1)]
    assert decisions(governance) == [
        "modelyard.events.v1.PromotionRequested",
        "modelyard.events.v1.DeploymentApproved",
    ]
    # The second approved version starts as a canary; the alias stays until it takes all traffic.
    promote(governance, catalog, 2)
    plan = governance.handlers.deployment_plan(EVE, "credit")
    assert (plan.primary.version, plan.canary.version if plan.canary else 0, plan.canary_weight) == (1, 2, 0.2)
    assert catalog.moves[-1] == ("credit", "production", 1)


def test_errors_of_the_approval_path(governance: GovernanceParts, catalog: InMemoryCatalog) -> None:
    handlers = governance.handlers
    with pytest.raises(NotFound):
        handlers.request_promotion(BOB, "credit", 9, "production")
    catalog.add(facts("credit", 1))
    with pytest.raises(FailedPrecondition, match="no policy rule"):
        handlers.request_promotion(BOB, "credit", 1, "nightly")
    request = handlers.request_promotion(BOB, "credit", 1, "production")
    with pytest.raises(AlreadyExists):
        handlers.request_promotion(BOB, "credit", 1, "production")
    with pytest.raises(FailedPrecondition, match="checks are still running"):
        handlers.approve(CAROL, request.id)
    handlers.run_pending_checks()
    with pytest.raises(SeparationOfDuties, match="sod-requester-cannot-approve"):
        handlers.approve(BOB, request.id)
    handlers.approve(CAROL, request.id)
    with pytest.raises(AlreadyExists):
        handlers.approve(CAROL, request.id)
    # A newer request for the same alias supersedes this one.
    catalog.add(facts("credit", 2))
    handlers.request_promotion(ALICE, "credit", 2, "production")
    with pytest.raises(FailedPrecondition, match="superseded"):
        handlers.approve(DAVE, request.id)
    assert handlers.get_request(EVE, request.id).reason == f"superseded by request {handlers.list_pending(EVE)[0].id}"


def test_a_changed_artifact_voids_approvals_and_failing_checks_reject(
    governance: GovernanceParts, catalog: InMemoryCatalog
) -> None:
    handlers = governance.handlers
    catalog.add(facts("credit", 1))
    request = handlers.request_promotion(BOB, "credit", 1, "production")
    handlers.run_pending_checks()
    handlers.approve(CAROL, request.id)
    catalog.change_digest("credit", 1, "sha256:" + "f" * 64)
    with pytest.raises(FailedPrecondition, match="artifact changed"):
        handlers.approve(DAVE, request.id)
    assert handlers.get_request(EVE, request.id).state is RequestState.REJECTED
    catalog.add(facts("credit", 2, accuracy=0.5))
    weak = handlers.request_promotion(BOB, "credit", 2, "production")
    handlers.run_pending_checks()
    rejected = handlers.get_request(EVE, weak.id)
    assert rejected.state is RequestState.REJECTED and "accuracy=0.5 outside [0.9, inf]" in rejected.reason
    assert decisions(governance).count("modelyard.events.v1.PromotionRejected") == 2
    catalog.add(facts("credit", 3))
    withdrawn = handlers.request_promotion(BOB, "credit", 3, "production")
    assert handlers.reject(BOB, withdrawn.id, "").state is RequestState.WITHDRAWN
    with pytest.raises(PermissionDenied):
        handlers.reject(EVE, withdrawn.id, "")


def test_a_critical_alert_on_the_canary_rolls_back_once(governance: GovernanceParts, catalog: InMemoryCatalog) -> None:
    handlers = governance.handlers
    promote(governance, catalog, 1)
    promote(governance, catalog, 2)
    assert handlers.handle_incident(incident(2, monitor_events_pb2.SEVERITY_WARNING)) is None
    # The monitor escalates the open warning: the same incident, updated to critical, meets the rollback rule.
    plan = handlers.handle_incident(incident(2, state=monitor_events_pb2.IncidentChanged.STATE_UPDATED))
    assert plan is not None and plan.primary.version == 1 and plan.canary is None
    assert handlers.handle_incident(incident(2)) is None  # flapping: one rollback per incident
    assert decisions(governance)[-1] == "modelyard.events.v1.RollbackOrdered"
    assert catalog.moves[-1] == ("credit", "production", 1)
    unknown = incident(1)
    unknown.version.model_name = "never-deployed"
    assert handlers.handle_incident(unknown) is None


def test_the_audit_log_records_decisions_and_events_once_and_verifies(
    governance: GovernanceParts, catalog: InMemoryCatalog
) -> None:
    request_id = promote(governance, catalog, 1)
    event = Event.new("credit", incident(1), "monitor")
    governance.handlers.record_event(event)
    governance.handlers.record_event(event)  # redelivered
    entries = list(governance.handlers.audit_entries(EVE, model_name="credit"))
    kinds = [e.kind.rsplit(".", 1)[1] for e in entries]
    assert kinds == ["PromotionRequested", "DeploymentApproved", "IncidentChanged"]
    assert [e.request_id for e in entries[:2]] == [request_id, request_id]
    assert governance.handlers.checkpoint() is not None
    assert governance.handlers.verify_audit(EVE).ok
    served = governance.handlers.served_at(EVE, "credit", datetime.now(UTC))
    assert served.plan.primary.version == 1 and served.request is not None
    assert served.request.approvers == ["carol", "dave"]
    card = governance.handlers.model_card(EVE, "credit", 1)
    assert card["governance"]["approvals"][0]["approver"] == "carol"
    assert card["governance"]["deployments"][0]["role"] == "primary"


def test_approved_events_carry_plan_digests(governance: GovernanceParts, catalog: InMemoryCatalog) -> None:
    promote(governance, catalog, 1)
    with governance.store.engine.connect() as connection:
        payload = connection.scalar(
            sa.select(schema.outbox.c.payload).where(
                schema.outbox.c.event_type == "modelyard.events.v1.DeploymentApproved"
            )
        )
    approved = governance_events_pb2.DeploymentApproved.FromString(payload)
    assert approved.plan.primary.digest == facts("credit", 1).ref.digest
    assert list(approved.approvers) == ["carol", "dave"]


def test_a_quiet_canary_takes_all_traffic_and_moves_the_alias(
    governance: GovernanceParts, catalog: InMemoryCatalog
) -> None:
    handlers = governance.handlers
    promote(governance, catalog, 1)
    promote(governance, catalog, 2)
    assert handlers.promote_due_canaries() == 0  # still observing (60 s in the test policy)
    later = datetime.now(UTC) + timedelta(seconds=61)
    handlers.clock = lambda: later
    assert handlers.promote_due_canaries() == 1
    plan = handlers.deployment_plan(EVE, "credit")
    assert (plan.primary.version, plan.canary) == (2, None)
    assert catalog.moves[-1] == ("credit", "production", 2)
    assert decisions(governance)[-1] == "modelyard.events.v1.DeploymentApproved"


def test_a_policy_without_approvals_deploys_after_the_checks(
    governance: GovernanceParts, catalog: InMemoryCatalog
) -> None:
    catalog.add(facts("credit", 1))
    request = governance.handlers.request_promotion(BOB, "credit", 1, "staging")
    assert governance.handlers.run_checks(request.id).state is RequestState.APPROVED
    assert catalog.moves == [("credit", "staging", 1)]
    assert decisions(governance)[-1] == "modelyard.events.v1.DeploymentApproved"


def test_every_current_plan_is_listed_through_the_api(governance: GovernanceParts, catalog: InMemoryCatalog) -> None:
    api = GovernanceApi(governance.handlers)
    assert list(api.ListDeploymentPlans(EVE, gpb.ListDeploymentPlansRequest()).plans) == []
    promote(governance, catalog, 1)
    catalog.add(facts("churn", 1))
    request = governance.handlers.request_promotion(BOB, "churn", 1, "staging")  # no approvals needed
    governance.handlers.run_pending_checks()
    assert governance.handlers.get_request(EVE, request.id).state is RequestState.APPROVED
    plans = api.ListDeploymentPlans(EVE, gpb.ListDeploymentPlansRequest()).plans
    assert [(p.model_name, p.primary.version, p.revision) for p in plans] == [("churn", 1, 1), ("credit", 1, 1)]
    assert plans[1] == api.GetDeploymentPlan(EVE, gpb.GetDeploymentPlanRequest(model_name="credit")).plan
    with pytest.raises(PermissionDenied):
        governance.handlers.deployment_plans(Principal("nobody", frozenset()))


def test_an_alias_move_lost_after_the_decision_is_made_again_by_reconciliation(
    governance: GovernanceParts, catalog: InMemoryCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    def registry_away(*args: object) -> None:
        raise CatalogUnavailable("registry: UNAVAILABLE")

    handlers = governance.handlers
    monkeypatch.setattr(catalog, "set_alias", registry_away)
    promote(governance, catalog, 1)  # committed and published, but the alias move failed (only logged)
    assert catalog.alias_version("credit", "production") is None
    (failed,) = handlers.reconcile_aliases()  # the registry is still away for writes: reported, not raised
    assert (failed.planned, failed.found, failed.repaired, failed.diverged) == (1, None, False, True)

    monkeypatch.undo()  # the registry is back
    (repaired,) = handlers.reconcile_aliases()
    assert (repaired.repaired, repaired.diverged) == (True, False)
    assert catalog.moves[-1] == ("credit", "production", 1)
    (in_step,) = handlers.reconcile_aliases()
    assert (in_step.found, in_step.repaired, in_step.diverged) == (1, False, False)  # nothing to do: no move
    assert len(catalog.moves) == 1


def test_prediction_traffic_is_audited_by_reference_not_copied(governance: GovernanceParts) -> None:
    batch = serving_events_pb2.PredictionBatch(
        model_name="credit",
        version=common_pb2.ModelVersionRef(model_name="credit", version=2),
        request_ids=[f"r{i}" for i in range(50)],
        inputs=[columns.write_rows("X", np.tile(np.arange(100.0), (50, 1, 1)))],
    )
    columns.set_per_record(batch, np.zeros(50), np.ones(50), [3 if i % 10 == 0 else 0 for i in range(50)])
    event = Event.new("credit", batch, "serving")
    governance.handlers.record_event(event)
    (entry,) = governance.store.audit_entries(model_name="credit")
    assert json.loads(entry.body)["payload"] == {
        "model_name": "credit",
        "batch_sha256": hashlib.sha256(batch.SerializeToString(deterministic=True)).hexdigest(),
        "records": 50,
        "records_by_version": {"2": 50},
        "errors": 5,
    }
    assert len(entry.body) < 400 < len(batch.SerializeToString())  # the tensors stay on the stream
