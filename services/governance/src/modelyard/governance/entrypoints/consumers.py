"""Kafka entrypoints: every topic into the audit trail, and monitor alerts into rollback decisions. The bootstrap
runs each consumer as a background task and watches it as a degradation check; only events signed by a key
governance trusts reach the handlers."""

from __future__ import annotations

from modelyard.contracts.events.v1 import monitor_events_pb2
from modelyard.events import topics
from modelyard.events.envelope import Event
from modelyard.events.signing import TrustedKeys
from modelyard.governance.adapters.metrics import ROLLBACKS
from modelyard.governance.config import GovernanceSettings
from modelyard.governance.handlers import GovernanceHandlers
from modelyard.kafka.consumer import EventConsumer


def audit_consumer(settings: GovernanceSettings, handlers: GovernanceHandlers, trusted: TrustedKeys) -> EventConsumer:
    """Every event of every audited topic, appended to the audit trail. Its own group, from the earliest offset:
    the audit trail must not miss history. Duplicates are no-ops by event id in the audit table itself, so no
    in-memory de-duplication is needed."""

    def record(event: Event) -> None:
        handlers.record_event(event)

    consumer = EventConsumer.from_settings(
        settings, f"{settings.consumer_group_prefix}-audit", topics.AUDITED, trusted_keys=trusted
    )
    for payload in {p for topic in topics.AUDITED for p in topic.payloads}:
        consumer.register(payload, record, cpu_bound=True)
    return consumer


def alert_consumer(settings: GovernanceSettings, handlers: GovernanceHandlers, trusted: TrustedKeys) -> EventConsumer:
    """Monitor alerts judged against the policy's rollback rules."""

    def judge_alert(event: Event) -> None:
        assert isinstance(event.payload, monitor_events_pb2.IncidentChanged)
        if (rollback := handlers.handle_incident(event.payload)) is not None:
            ROLLBACKS.labels(model=rollback.model_name).inc()

    consumer = EventConsumer.from_settings(
        settings, f"{settings.consumer_group_prefix}-rollback", [topics.MONITOR_ALERTS], trusted_keys=trusted
    )
    # An incident id is acted on once (the deployment remembers it); a replayed event id is skipped earlier.
    consumer.register(monitor_events_pb2.IncidentChanged, judge_alert, cpu_bound=True, idempotent=True)
    return consumer
