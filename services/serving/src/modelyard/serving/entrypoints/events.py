"""Governance decisions from Kafka: each DeploymentApproved or RollbackOrdered carries the plan to enact."""

from __future__ import annotations

from modelyard.contracts.events.v1 import governance_events_pb2 as gov
from modelyard.contracts.events.v1.common_pb2 import DeploymentPlan
from modelyard.events.envelope import Event
from modelyard.kafka.consumer import EventConsumer, PermanentError, TransientError
from modelyard.serving.adapters.plans import plan_from_message
from modelyard.serving.domain.errors import PlanSourceError
from modelyard.serving.handlers import Lifecycle


class DecisionHandlers:
    def __init__(self, lifecycle: Lifecycle) -> None:
        self.lifecycle = lifecycle

    def register(self, consumer: EventConsumer) -> None:
        # Not `idempotent=True`: the plan revision already makes a redelivered decision a no-op. Only decisions
        # signed by a trusted governance key get here (the consumer verifies them).
        consumer.register(gov.DeploymentApproved, self.on_deployment_approved)
        consumer.register(gov.RollbackOrdered, self.on_rollback_ordered)

    async def on_deployment_approved(self, event: Event) -> None:
        await self._enact(event.payload.plan)  # type: ignore[attr-defined]

    async def on_rollback_ordered(self, event: Event) -> None:
        await self._enact(event.payload.plan)  # type: ignore[attr-defined]

    async def _enact(self, message: DeploymentPlan) -> None:
        try:
            plan = plan_from_message(message)
        except ValueError as exc:
            raise PermanentError(str(exc)) from exc
        try:
            await self.lifecycle.apply_decision(plan)
        except PlanSourceError as exc:
            raise (TransientError if exc.transient else PermanentError)(str(exc)) from exc
