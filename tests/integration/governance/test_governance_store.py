"""The audit trail on SQLite and PostgreSQL: concurrent appends keep one chain; a tampered row is named."""

from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from modelyard.contracts.events.v1 import common_pb2, monitor_events_pb2
from modelyard.events.envelope import Event
from modelyard.governance.adapters.sql import schema
from modelyard.governance.bootstrap import GovernanceParts
from modelyard.governance.testing import EVE

pytestmark = pytest.mark.integration


def event(i: int) -> Event:
    alert = monitor_events_pb2.IncidentChanged(
        incident_id=f"i{i}", version=common_pb2.ModelVersionRef(model_name="m", version=i % 3 + 1)
    )
    return Event.new("m", alert, "monitor")


def test_concurrent_appends_form_one_chain_and_tampering_is_named(governance: GovernanceParts) -> None:
    handlers = governance.handlers
    before = sum(1 for _ in governance.store.audit_entries())
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: handlers.record_event(event(i)), range(12)))
    handlers.checkpoint()
    result = handlers.verify_audit(EVE)
    assert result.ok, result.problem
    assert result.entries == before + 12 and result.checkpoints >= 2  # every 5 entries, plus the one asked for
    assert len(list(handlers.audit_entries(EVE, model_name="m", version=2))) >= 4

    victim = before + 7
    with governance.store.engine.begin() as connection:
        connection.execute(
            schema.audit_log.update().where(schema.audit_log.c.seq == victim).values(body='{"forged":true}')
        )
    tampered = handlers.verify_audit(EVE)
    assert not tampered.ok and tampered.first_bad_seq == victim
    assert tampered.problem == f"entry {victim}: its content does not match its hash"

    with governance.store.engine.begin() as connection:
        connection.execute(sa.delete(schema.audit_log).where(schema.audit_log.c.seq == victim))
    assert handlers.verify_audit(EVE).first_bad_seq == victim
