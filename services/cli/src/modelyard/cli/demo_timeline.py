"""What the demo shows and reports: its steps, a timeline of them and of the platform's own events (one line each),
and the result."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console

if TYPE_CHECKING:
    from modelyard.events.envelope import Event
    from modelyard.events.signing import TrustedKeys

DEADLINE_EVENT_LOG = 60.0

STEPS = (
    "trained v1 and v2",
    "registered v1",
    "promotion of v1 requested",
    "checks of v1 passed",
    "v1 approved by carol and dave",
    "serving loaded v1",
    "traffic answered by v1",
    "registered v2",
    "v2 approved as a 20% canary",
    "serving loaded v2 as canary",
    "traffic split between v1 and v2",
    "monitor raised drift on canary v2",
    "governance rolled back v2",
    "serving unloaded v2",
    "traffic answered by v1 again",
    "labelled drifted traffic sent to v1",
    "traced a v1 prediction, with its explanation",
    "monitor suggested retraining",
    "retrained v3 on the drifted traffic",
    "checks of v3 passed",
    "v3 approved as a 20% canary",
    "serving loaded v3 as canary",
    "v3 promoted after its canary",
    "traffic answered by v3",
    "traced a v3 prediction, with its explanation",
    "realised accuracy recovered",
    "audit chain verified",
)
# `modelyard demo --no-retrain`: the loop up to the rollback, then the audit (no retraining act).
ROLLBACK_STEPS = (*STEPS[: STEPS.index("traffic answered by v1 again") + 1], "audit chain verified")


class StepFailed(Exception):
    def __init__(self, step: str, why: str) -> None:
        super().__init__(f"{step}: {why}")
        self.step = step
        self.why = why


@dataclass
class DemoResult:
    steps: list[str] = field(default_factory=list)  # completed, in order
    failure: StepFailed | None = None
    traffic: dict[str, dict[str, int]] = field(default_factory=dict)  # phase -> {model version: answers}
    served_versions: list[str] = field(default_factory=list)  # ModelMetadata after the rollback
    audit_entries: int = 0
    audit_checkpoints: int = 0
    dashboard_url: str = ""
    timeline: list[TimelineEntry] = field(default_factory=list)
    expected: tuple[str, ...] = STEPS  # the steps of the loop that was run

    @property
    def ok(self) -> bool:
        return self.failure is None and tuple(self.steps) == self.expected


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    elapsed_s: float
    actor: str
    what: str


@dataclass
class Timeline:
    """What happened, in order, printed as it happens."""

    console: Console
    started: float = field(default_factory=time.monotonic)
    entries: list[TimelineEntry] = field(default_factory=list)

    def add(self, actor: str, what: str) -> None:
        entry = TimelineEntry(datetime.now().astimezone(), time.monotonic() - self.started, actor, what)
        self.entries.append(entry)
        colour = {"demo": "bold", "registry": "cyan", "governance": "magenta", "serving": "green"}.get(actor, "yellow")
        self.console.print(
            f"{entry.at:%H:%M:%S.%f}"[:-3] + f" [dim]+{entry.elapsed_s:6.1f}s[/] [{colour}]{actor:>10}[/] {what}"
        )


def describe(event: Event) -> str:
    """One line for the timeline."""
    from modelyard.contracts.events.v1 import monitor_events_pb2 as mon

    p: Any = event.payload
    kind = event.type.rsplit(".", 1)[-1]

    def ref(r: Any) -> str:
        return f"v{r.version}"

    def plan(pl: Any) -> str:
        text = f"plan r{pl.revision}: primary {ref(pl.primary)}"
        if pl.HasField("canary"):
            text += f", canary {ref(pl.canary)} at {pl.canary_weight:.0%}"
        return text

    match kind:
        case "RegisteredModelCreated":
            return f"RegisteredModelCreated {p.model_name} by {p.created_by}"
        case "ModelVersionRegistered":
            return f"ModelVersionRegistered {ref(p.version)} {p.version.digest[:19]}… by {p.created_by}"
        case "ModelVersionStatusChanged":
            from modelyard.contracts.events.v1 import registry_events_pb2 as reg

            status = reg.ModelVersionStatus.Name(p.status).removeprefix("MODEL_VERSION_STATUS_")
            return f"ModelVersionStatusChanged {ref(p.version)} -> {status}"
        case "AliasMoved":
            return f"AliasMoved {p.alias}: v{p.from_version} -> v{p.to_version} by {p.moved_by}"
        case "PromotionRequested":
            return f"PromotionRequested {ref(p.version)} -> {p.target_alias} by {p.requested_by}"
        case "DeploymentApproved":
            return f"DeploymentApproved by {', '.join(p.approvers)}: {plan(p.plan)}"
        case "PromotionRejected":
            return f"PromotionRejected {ref(p.version)}: {p.reason}"
        case "RollbackOrdered":
            return f"[red]RollbackOrdered[/] {ref(p.rolled_back)}: {p.reason} -> {plan(p.plan)}"
        case "ModelLoaded":
            return f"ModelLoaded {ref(p.version)} on {p.replica} (warm-up {p.warmup_ms:.1f} ms)"
        case "ModelUnloaded":
            return f"ModelUnloaded {ref(p.version)} on {p.replica}"
        case "ModelLoadFailed":
            return f"[red]ModelLoadFailed[/] {ref(p.version)}: {p.reason}"
        case "IncidentChanged":
            state = mon.IncidentChanged.State.Name(p.state).removeprefix("STATE_").lower()
            signal = mon.Signal.Name(p.signal).removeprefix("SIGNAL_").lower()
            severity = mon.Severity.Name(p.severity).removeprefix("SEVERITY_").lower()
            top = max(p.evidence, key=lambda e: e.effect_size, default=None)
            detail = f", {top.feature}: {top.statistic} {top.value:.2f}, effect {top.effect_size:.2f}" if top else ""
            # A drift incident is about the model and names every drifted feature: the most moved one is shown.
            others = len({e.feature for e in p.evidence}) - 1
            detail += f" (and {others} more feature{'s' if others > 1 else ''})" if others > 0 else ""
            line = f"IncidentChanged {state} on {ref(p.version)}: {signal}, {severity}{detail}"
            # Only critical incidents can roll back (the demo's policy); the others are shown, but quietly.
            return f"[red]{line}[/]" if p.severity == mon.SEVERITY_CRITICAL else f"[dim]{line}[/]"
        case "RetrainingSuggested":
            return f"RetrainingSuggested for {ref(p.version)}: {p.rows} labelled rows in {p.dataset_digest[:19]}…"
    return kind


class EventLog:
    """Every event on the registry, governance, serving-status and alert topics, from the beginning, in a consumer
    group of its own: the timeline shows the platform's own record of each step, and the steps wait on it."""

    def __init__(self, bootstrap: str, timeline: Timeline, trusted: TrustedKeys) -> None:
        from modelyard.events import topics
        from modelyard.kafka.consumer import EventConsumer

        watched = (topics.REGISTRY_EVENTS, topics.GOVERNANCE_DECISIONS, topics.SERVING_STATUS, topics.MONITOR_ALERTS)
        self.timeline = timeline
        self.events: list[Event] = []
        self._changed = asyncio.Condition()
        group = f"modelyard-demo-{uuid.uuid4().hex[:8]}"
        self._consumer = EventConsumer(bootstrap, group, watched, trusted_keys=trusted)
        for topic in watched:
            for payload in topic.payloads:
                self._consumer.register(payload, self._on_event)

    async def _on_event(self, event: Event) -> None:
        self.events.append(event)
        self.timeline.add(event.source, describe(event))
        async with self._changed:
            self._changed.notify_all()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[EventLog]:
        async with self._consumer:
            async with asyncio.timeout(DEADLINE_EVENT_LOG):
                # Joining a group takes a while on the embedded broker; aiokafka offers nothing to await for it.
                while not self._consumer.assignment:  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
            yield self

    async def wait_for(self, wanted: Callable[[Any], bool], failed: Callable[[Any], str | None] | None = None) -> Any:
        """The payload of the first event `wanted` accepts; `failed` names a reason to stop waiting early."""
        seen = 0
        while True:
            async with self._changed:
                for event in self.events[seen:]:
                    if failed is not None and (why := failed(event.payload)):
                        raise RuntimeError(why)
                    if wanted(event.payload):
                        return event.payload
                seen = len(self.events)
                await self._changed.wait()
