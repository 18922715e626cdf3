from datetime import UTC, datetime, timedelta

import pytest

from modelyard.governance.domain.deployment import Incident, deploy, promote_canary, rollback_for
from modelyard.governance.domain.model import VersionRef
from modelyard.governance.domain.policy import AlertSeverity, Rollout

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 1, tzinfo=UTC)
V1, V2 = VersionRef("m", 1, "sha256:1"), VersionRef("m", 2, "sha256:2")
CANARY = Rollout(canary_weight=0.1, observation_s=600, auto_promote=True, fresh_s=3600)


def critical(version: int, incident_id: str = "i1", open: bool = True) -> Incident:
    return Incident(incident_id, "m", version, "performance", AlertSeverity.CRITICAL, open)


def test_the_first_approval_takes_all_traffic_and_later_ones_start_as_canary() -> None:
    first = deploy(None, V1, "production", "r1", CANARY, NOW)
    assert first.plan.primary == V1 and first.plan.canary is None and first.plan.revision == 1
    second = deploy(first, V2, "production", "r2", CANARY, NOW)
    assert (second.plan.primary, second.plan.canary, second.plan.canary_weight) == (V1, V2, 0.1)
    assert second.plan.revision == 2 and second.previous == V1
    shadowed = deploy(first, V2, "production", "r2", Rollout(shadow=True), NOW)
    assert shadowed.plan.shadow == V2 and shadowed.plan.primary == V1


def test_a_critical_alert_on_the_canary_rolls_back_once_per_incident() -> None:
    canary = deploy(deploy(None, V1, "production", "r1", CANARY, NOW), V2, "production", "r2", CANARY, NOW)
    rollback = rollback_for(canary, critical(2), NOW)
    assert rollback is not None and rollback.rolled_back == V2
    assert rollback.deployment.plan.primary == V1 and rollback.deployment.plan.canary is None
    assert rollback.deployment.plan.revision == 3
    # The same incident again (redelivered, flapping): nothing more.
    assert rollback_for(rollback.deployment, critical(2), NOW) is None
    # A new incident about the rolled-back version: it no longer serves.
    assert rollback_for(rollback.deployment, critical(2, "i2"), NOW) is None


def test_a_fresh_primary_rolls_back_to_the_previous_approved_version_but_an_old_one_does_not() -> None:
    switched = deploy(deploy(None, V1, "production", "r1", Rollout(), NOW), V2, "production", "r2", Rollout(), NOW)
    assert switched.plan.primary == V2
    rollback = rollback_for(switched, critical(2), NOW + timedelta(minutes=5))
    assert rollback is not None and rollback.deployment.plan.primary == V1
    assert rollback_for(switched, critical(2), NOW + timedelta(hours=2)) is None
    assert rollback_for(switched, critical(2, open=False), NOW) is None


def test_a_canary_is_promoted_after_a_quiet_observation_period() -> None:
    canary = deploy(deploy(None, V1, "production", "r1", CANARY, NOW), V2, "production", "r2", CANARY, NOW)
    assert promote_canary(canary, False, NOW + timedelta(seconds=599)) is None
    assert promote_canary(canary, True, NOW + timedelta(seconds=601)) is None
    promoted = promote_canary(canary, False, NOW + timedelta(seconds=601))
    assert promoted is not None and promoted.plan.primary == V2 and promoted.plan.canary is None
    assert promoted.plan.revision == canary.plan.revision + 1
