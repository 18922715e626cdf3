"""`modelyard demo`: the whole loop on this machine, in a few minutes.

It starts the same stack as `modelyard up` (embedded broker, SQLite, the four services as processes), then:
trains a logistic regression on scikit-learn's breast cancer data, exports it to ONNX, registers v1 with its
reference and evaluation data, asks for promotion, approves as two people, waits until serving has loaded it,
sends traffic through stock tritonclient over gRPC, registers v2 and rolls it out as a 20 % canary, shifts the
incoming data (sizes reported 1.5 SD larger by a recalibrated imaging pipeline), waits for the monitor to raise
drift on the canary and for governance to roll it back, checks that serving answers from v1 again, and verifies
the audit chain. Every step has a deadline; the command exits 1 if one is missed.

`run_demo` is what the command and the e2e test both run.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
import shutil
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import grpc
import typer
from rich.console import Console
from rich.table import Table

from modelyard.cli.stack import DEFAULT_DATA_DIR, StackError, StackState, trusted_keys
from modelyard.cli.up import StackOptions, running_stack, stack_errors_exit
from modelyard.cli.users import SERVICE_PRINCIPALS, Identity, UsersFile, identity_settings
from modelyard.tls import grpc_aio_channel

if TYPE_CHECKING:
    # numpy (and scikit-learn, skl2onnx, aiokafka) are imported where used: every `modelyard` command loads this
    # module, and only the demo needs them.
    import numpy as np

    from modelyard.events.envelope import Event
    from modelyard.events.signing import TrustedKeys

T = TypeVar("T")

MODEL = "breast-cancer"
ALIAS = "production"
LABEL_COLUMN = "target"
MARKER = ".modelyard-demo"  # in a data dir the demo made, so that it only ever wipes its own
DEFAULT_DEMO_DIR = DEFAULT_DATA_DIR / "demo"
# A recalibrated imaging pipeline reports every size larger: radius, perimeter and area, mean and worst.
SHIFTED_FEATURES = ("mean radius", "mean perimeter", "mean area", "worst radius", "worst perimeter", "worst area")
SHIFT_SD = 1.5  # in training standard deviations: well past the monitor's critical effect size (3 x 0.1)
CANARY_WEIGHT = 0.2
WINDOW_EVENTS = 100  # the monitor's window for the demo: small, so the canary's 20 % fills windows quickly
ROWS_PER_ROUND = 300  # one tritonclient run
SEED = 7
TOKENS_FILE = "tokens.json"

# Who does what. Separation of duties: the registrant and requester (alice) may not approve; carol and dave do.
PRINCIPALS: dict[str, list[str]] = {
    "alice": ["publisher"],  # the data scientist: registers versions and asks for their promotion
    "carol": ["approver"],
    "dave": ["approver"],
    **SERVICE_PRINCIPALS,  # the services as callers of each other
}

# Deadlines in seconds, generous: the machine may be shared, and every wait ends as soon as its event arrives.
DEADLINE_REGISTER = 90.0
DEADLINE_CHECKS = 180.0
DEADLINE_DECISION = 90.0
DEADLINE_LOAD = 120.0
DEADLINE_TRAFFIC = 180.0
DEADLINE_DRIFT = 300.0
DEADLINE_UNLOAD = 120.0
DEADLINE_AUDIT = 60.0
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
    "audit chain verified",
)

POLICY = f"""\
# The demo's governance policy (docs/governance.md). Written by `modelyard demo`.
version: modelyard-demo
promotions:
  - models: "{MODEL}"
    alias: {ALIAS}
    checks:
      lineage_metrics: {{accuracy: {{min: 0.9}}}}
      evaluation: {{label_column: {LABEL_COLUMN}, metrics: {{accuracy: {{min: 0.9}}, roc_auc: {{min: 0.95}}}}}}
      latency_budget_ms: 250
      signature_compatible: true
    approvals: {{count: 2, role: approver}}
    # observation_s: the canary must not be promoted automatically while the demo watches it.
    # fresh_s: 0: v1 has served for seconds when the data shifts and its own windows drift too; the incident
    # that must roll back is the canary's (there is nothing before v1 to roll back to).
    rollout: {{canary_weight: {CANARY_WEIGHT}, observation_s: 3600, auto_promote: true, fresh_s: 0}}
rollbacks:
  - models: "*"
    min_severity: critical
    action: rollback
"""

# soft_wrap: a timeline line stays one line in a log file or a narrow terminal
out = Console(highlight=False, soft_wrap=True)


class StepFailed(Exception):
    def __init__(self, step: str, why: str) -> None:
        super().__init__(f"{step}: {why}")
        self.step = step
        self.why = why


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

    @property
    def ok(self) -> bool:
        return self.failure is None and tuple(self.steps) == STEPS


# --- the data scientist's part: data and models ---------------------------------------------------------------


@dataclass(frozen=True)
class DemoData:
    feature_names: tuple[str, ...]
    x_train: np.ndarray[Any, np.dtype[np.float32]]
    y_train: np.ndarray[Any, np.dtype[np.int64]]
    x_test: np.ndarray[Any, np.dtype[np.float32]]
    y_test: np.ndarray[Any, np.dtype[np.int64]]

    def traffic(self, rows: int, seed: int, *, shifted: bool) -> np.ndarray[Any, np.dtype[np.float32]]:
        """`rows` incoming cases, drawn from the held-out data (seeded, so every run sends the same)."""
        import numpy as np

        rng = np.random.default_rng(seed)
        x = self.x_test[rng.integers(0, len(self.x_test), size=rows)].copy()
        if shifted:
            columns = [self.feature_names.index(f) for f in SHIFTED_FEATURES]
            x[:, columns] += SHIFT_SD * self.x_train[:, columns].std(axis=0)
        return x.astype(np.float32)

    def csv(self, x: np.ndarray[Any, Any], y: np.ndarray[Any, Any] | None, columns: list[str]) -> bytes:
        header = ",".join(f'"{c}"' for c in columns) + (f",{LABEL_COLUMN}" if y is not None else "")
        lines = [header]
        for index, row in enumerate(x):
            values = ",".join(f"{v:.6g}" for v in row)
            lines.append(values + (f",{int(y[index])}" if y is not None else ""))
        return ("\n".join(lines) + "\n").encode()


@dataclass(frozen=True)
class TrainedVersion:
    onnx: bytes
    parameters: dict[str, str]
    metrics: dict[str, float]

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.onnx).hexdigest()


def load_data() -> DemoData:
    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    data = load_breast_cancer()
    x = data.data.astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, data.target, test_size=0.3, random_state=SEED, stratify=data.target
    )
    return DemoData(tuple(str(f) for f in data.feature_names), x_train, y_train, x_test, y_test)


def train(data: DemoData, regularization: float) -> TrainedVersion:
    """Standardise + logistic regression, exported with skl2onnx (zipmap off: outputs are plain tensors)."""
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    estimator = make_pipeline(StandardScaler(), LogisticRegression(C=regularization, max_iter=1000))
    estimator.fit(data.x_train, data.y_train)
    metrics = {
        "accuracy": float(accuracy_score(data.y_test, estimator.predict(data.x_test))),
        "roc_auc": float(roc_auc_score(data.y_test, estimator.predict_proba(data.x_test)[:, 1])),
    }
    model = to_onnx(estimator, data.x_train[:1], options={"zipmap": False}, target_opset={"": 17, "ai.onnx.ml": 3})
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"  # any batch size
    return TrainedVersion(
        model.SerializeToString(), {"C": str(regularization), "model": "logistic_regression"}, metrics
    )


# --- watching the platform: every event on the topics the loop runs through ----------------------------------


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


# --- the scenario --------------------------------------------------------------------------------------------


def _is(payload: Any, kind: str) -> bool:
    return str(payload.DESCRIPTOR.name) == kind


class Scenario:
    def __init__(self, state: StackState, work: Path, tokens: dict[str, str], timeline: Timeline) -> None:
        self.state = state
        self.work = work
        self.tokens = tokens
        self.timeline = timeline
        self.result = DemoResult(dashboard_url=f"{state.services['monitor'].http}/dashboard")
        # Set by `run` once the channels are open.
        self.log: EventLog
        self.registry: Any
        self.governance: Any
        self.serving: Any

    def auth(self, principal: str) -> tuple[tuple[str, str]]:
        return (("authorization", f"Bearer {self.tokens[principal]}"),)

    async def step(self, name: str, deadline_s: float, action: Awaitable[T], *, part: bool = False) -> T:
        """`action` within its deadline; `part=True` for a part of the named step that follows (no line of its
        own, not counted)."""
        try:
            async with asyncio.timeout(deadline_s):
                value = await action
        except TimeoutError:
            raise StepFailed(name, f"did not happen within {deadline_s:g}s") from None
        except RuntimeError as exc:  # a refusal on the way (a failed check, a load failure): no point waiting
            raise StepFailed(name, str(exc)) from None
        except grpc.aio.AioRpcError as exc:
            raise StepFailed(name, f"{exc.code().name}: {exc.details()}") from None
        except ImportError as exc:  # scikit-learn and skl2onnx are development dependencies of the workspace
            raise StepFailed(name, f"{exc}: the demo needs the workspace's dev dependencies (`make setup`)") from None
        if not part:
            self.result.steps.append(name)
            self.timeline.add("demo", f"[green]✓[/] {name}")
        return value

    async def run(self, *, full: bool = True) -> None:
        """The whole loop; without `full`, only up to "traffic answered by v1" (a first version, served)."""
        async with self.connected():
            data, v2 = await self._first_version()
            if full:
                await self._canary_drift_rollback(data, v2)

    @contextlib.asynccontextmanager
    async def connected(self) -> AsyncIterator[Scenario]:
        """The event log running and the stubs set, for the steps below (the demo's loop, or a test's own)."""
        from modelyard.contracts.governance.v1 import governance_service_pb2_grpc as gov_grpc
        from modelyard.contracts.inference import grpc_service_pb2_grpc as inference_grpc
        from modelyard.contracts.registry.v1 import registry_service_pb2_grpc as reg_grpc

        services = self.state.services
        tls = self.state.client_tls
        async with (
            EventLog(
                self.state.broker.bootstrap, self.timeline, trusted_keys(self.state.data_dir)
            ).running() as self.log,
            grpc_aio_channel(services["registry"].grpc, tls) as registry,
            grpc_aio_channel(services["governance"].grpc, tls) as governance,
            grpc_aio_channel(services["serving"].grpc, tls) as serving,
        ):
            self.registry = reg_grpc.RegistryServiceStub(registry)  # type: ignore[no-untyped-call]
            self.governance = gov_grpc.GovernanceServiceStub(governance)  # type: ignore[no-untyped-call]
            self.serving = inference_grpc.GRPCInferenceServiceStub(serving)  # type: ignore[no-untyped-call]
            yield self

    async def _first_version(self) -> tuple[DemoData, TrainedVersion]:
        """Train, then register, approve, load and call v1; v2 (trained alongside) for what follows."""
        data, v1, v2 = await self.step("trained v1 and v2", DEADLINE_REGISTER, asyncio.to_thread(self._train))
        for number, version in ((1, v1), (2, v2)):
            metrics = ", ".join(f"{name} {value:.3f}" for name, value in version.metrics.items())
            self.timeline.add(
                "demo", f"v{number}: logistic regression, C={version.parameters['C']}: {metrics} on held-out data"
            )

        await self.step("registered v1", DEADLINE_REGISTER, self.register(data, v1, expected_version=1))
        request_id = await self.step("promotion of v1 requested", DEADLINE_DECISION, self.request_promotion(1))
        await self.step("checks of v1 passed", DEADLINE_CHECKS, self.checks_passed(request_id))
        await self.step("v1 approved by carol and dave", DEADLINE_DECISION, self.approve(request_id, canary=None))
        await self.step("serving loaded v1", DEADLINE_LOAD, self.loaded(1))
        traffic = await self.step(
            "traffic answered by v1",
            DEADLINE_TRAFFIC,
            self.traffic("v1", data.traffic(ROWS_PER_ROUND, SEED, shifted=False)),
        )
        self.expect("traffic answered by v1", traffic == {"1": ROWS_PER_ROUND}, f"answers by version {traffic}")
        return data, v2

    async def _canary_drift_rollback(self, data: DemoData, v2: TrainedVersion) -> None:
        """v2 as a canary, drift on it, its rollback, and the audit chain's verification."""
        await self.step("registered v2", DEADLINE_REGISTER, self.register(data, v2, expected_version=2))
        step = "v2 approved as a 20% canary"
        request_id = await self.step(step, DEADLINE_DECISION, self.request_promotion(2), part=True)
        await self.step(step, DEADLINE_CHECKS, self.checks_passed(request_id), part=True)
        await self.step(step, DEADLINE_DECISION, self.approve(request_id, canary=2))
        await self.step("serving loaded v2 as canary", DEADLINE_LOAD, self.loaded(2))
        rows = 2 * ROWS_PER_ROUND
        traffic = await self.step(
            "traffic split between v1 and v2",
            DEADLINE_TRAFFIC,
            self.traffic("canary", data.traffic(rows, SEED + 1, shifted=False)),
        )
        share = traffic.get("2", 0) / rows
        self.expect(
            "traffic split between v1 and v2",
            set(traffic) == {"1", "2"} and abs(share - CANARY_WEIGHT) < 0.1 and sum(traffic.values()) == rows,
            f"answers by version {traffic}",
        )

        self.timeline.add("demo", f"the data shifts: {', '.join(SHIFTED_FEATURES)} now read {SHIFT_SD} SD larger")
        sender = await self.step("monitor raised drift on canary v2", DEADLINE_DRIFT, self.drift_until_incident(data))
        try:
            await self.step("governance rolled back v2", DEADLINE_DECISION, self.log.wait_for(self._rollback_of_v2))
            await self.step("serving unloaded v2", DEADLINE_UNLOAD, self.unloaded(2))
            await self.step("traffic answered by v1 again", DEADLINE_TRAFFIC, sender, part=True)
        finally:
            sender.cancel()
        traffic = await self.step(
            "traffic answered by v1 again",
            DEADLINE_TRAFFIC,
            self.traffic("after rollback", data.traffic(ROWS_PER_ROUND, SEED + 99, shifted=True)),
        )
        self.result.served_versions = await self.served_versions()
        self.expect(
            "traffic answered by v1 again",
            traffic == {"1": ROWS_PER_ROUND} and self.result.served_versions == ["1"],
            f"answers by version {traffic}, ModelMetadata versions {self.result.served_versions}",
        )
        await self.step("audit chain verified", DEADLINE_AUDIT, self.verify_audit())

    def expect(self, step: str, condition: bool, why: str) -> None:
        if not condition:
            self.result.steps.remove(step)
            raise StepFailed(step, why)

    def _train(self) -> tuple[DemoData, TrainedVersion, TrainedVersion]:
        data = load_data()
        return data, train(data, regularization=1.0), train(data, regularization=0.05)

    async def upload(self, data: bytes, media_type: str) -> str:
        from modelyard.contracts.registry.v1 import registry_service_pb2 as reg

        digest = "sha256:" + hashlib.sha256(data).hexdigest()

        async def requests() -> AsyncIterator[reg.UploadArtifactRequest]:
            header = reg.UploadArtifactRequest.Header(media_type=media_type, digest=digest, size_bytes=len(data))
            yield reg.UploadArtifactRequest(header=header)
            for start in range(0, len(data), 1 << 20):
                yield reg.UploadArtifactRequest(chunk=data[start : start + (1 << 20)])

        await self.registry.UploadArtifact(requests(), metadata=self.auth("alice"))
        return digest

    async def register(self, data: DemoData, model: TrainedVersion, expected_version: int) -> None:
        from modelyard.contracts.events.v1 import registry_events_pb2 as reg_events
        from modelyard.contracts.registry.v1 import registry_service_pb2 as reg

        with contextlib.suppress(grpc.aio.AioRpcError):  # ALREADY_EXISTS for v2; anything else fails below
            await self.registry.CreateRegisteredModel(
                reg.CreateRegisteredModelRequest(
                    name=MODEL,
                    description="Breast cancer screening aid (scikit-learn's Wisconsin diagnostic data)",
                    tags={"intended_use": "second opinion on fine-needle aspirate measurements"},
                ),
                metadata=self.auth("alice"),
            )
        features = list(data.feature_names)
        reference = await self.upload(data.csv(data.x_train, data.y_train, features), "text/csv")
        evaluation = await self.upload(data.csv(data.x_test, data.y_test, features), "text/csv")
        artifact = await self.upload(model.onnx, "application/onnx")
        request = reg.CreateModelVersionRequest(
            model_name=MODEL,
            artifact_digest=artifact,
            reference_dataset_digest=reference,
            label_column=LABEL_COLUMN,
            lineage=reg.Lineage(
                training_datasets=[reference],
                evaluation_datasets=[evaluation],
                parameters=model.parameters,
                metrics=model.metrics,
                environment={"python": sys.version.split()[0]},
            ),
        )
        created = (await self.registry.CreateModelVersion(request, metadata=self.auth("alice"))).model_version
        if created.version != expected_version:
            raise RuntimeError(f"the registry numbered it v{created.version}, expected v{expected_version}")
        get = reg.GetModelVersionRequest(model_name=MODEL, version=created.version)
        while True:
            version = (await self.registry.GetModelVersion(get, metadata=self.auth("alice"))).model_version
            if version.status == reg_events.MODEL_VERSION_STATUS_READY:
                return
            if version.status == reg_events.MODEL_VERSION_STATUS_FAILED_REGISTRATION:
                raise RuntimeError(f"registration failed: {version.status_message}")
            await asyncio.sleep(0.2)

    async def serve(self, data: DemoData, model: TrainedVersion, version: int) -> None:
        """Register `model` as `version`, have it promoted (no canary) and wait until serving loaded it: a stack
        that serves something, for the tests and benches that inflict things on one."""
        await self.register(data, model, expected_version=version)
        request_id = await self.request_promotion(version)
        await self.checks_passed(request_id)
        await self.approve(request_id, canary=None)
        await self.loaded(version)

    async def request_promotion(self, version: int) -> str:
        from modelyard.contracts.governance.v1 import governance_service_pb2 as gov

        request = gov.RequestPromotionRequest(model_name=MODEL, version=version, target_alias=ALIAS)
        response = await self.governance.RequestPromotion(request, metadata=self.auth("alice"))
        return str(response.request.request_id)

    async def checks_passed(self, request_id: str) -> None:
        from modelyard.contracts.governance.v1 import governance_service_pb2 as gov

        while True:
            get = gov.GetDecisionRequest(request_id=request_id)
            found = (await self.governance.GetDecision(get, metadata=self.auth("carol"))).request
            if found.state != "checking":
                checks = ", ".join(f"{c.name} {'passed' if c.passed else 'FAILED'}" for c in found.checks)
                self.timeline.add("governance", f"checks of v{found.version.version}: {checks}")
                if found.state != "awaiting_approval":
                    raise RuntimeError(f"request is {found.state}: {found.reason}")
                return
            await asyncio.sleep(0.2)

    async def approve(self, request_id: str, canary: int | None) -> None:
        from modelyard.contracts.governance.v1 import governance_service_pb2 as gov

        for approver in ("carol", "dave"):
            answer = await self.governance.Approve(
                gov.ApproveRequest(request_id=request_id), metadata=self.auth(approver)
            )
            self.timeline.add(approver, f"approves ({answer.request.state})")

        def approved(p: Any) -> bool:
            if not (_is(p, "DeploymentApproved") and p.request_id == request_id):
                return False
            if canary is None:
                return True
            return bool(p.plan.canary.version == canary and abs(p.plan.canary_weight - CANARY_WEIGHT) < 1e-9)

        def rejected(p: Any) -> str | None:
            return f"rejected: {p.reason}" if _is(p, "PromotionRejected") and p.request_id == request_id else None

        await self.log.wait_for(approved, rejected)

    async def loaded(self, version: int) -> None:
        def failed(p: Any) -> str | None:
            ok = _is(p, "ModelLoadFailed") and p.version.version == version
            return f"serving could not load v{version}: {p.reason}" if ok else None

        await self.log.wait_for(lambda p: _is(p, "ModelLoaded") and p.version.version == version, failed)

    async def unloaded(self, version: int) -> None:
        await self.log.wait_for(lambda p: _is(p, "ModelUnloaded") and p.version.version == version)

    async def traffic(self, phase: str, rows: np.ndarray[Any, Any]) -> dict[str, int]:
        """`rows` as single-row requests through stock tritonclient (a process of its own: see demo_traffic)."""
        import numpy as np

        path = self.work / f"traffic-{phase.replace(' ', '-')}-{len(self.result.traffic)}.npy"
        np.save(path, rows)
        tls = self.state.tls
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "modelyard.cli.demo_traffic",
            self.state.services["serving"].grpc,
            MODEL,
            str(path),
            f"{phase.replace(' ', '-')}-{len(self.result.traffic)}",
            *((str(tls.ca_file), str(tls.cert_file), str(tls.key_file)) if tls else ()),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            output, errors = await process.communicate()
        except asyncio.CancelledError:  # the step's deadline: do not leave the client running
            process.kill()
            await process.wait()
            raise
        if process.returncode != 0:
            raise RuntimeError(f"tritonclient exited with {process.returncode}: {errors.decode()[-2000:]}")
        answer = json.loads(output)
        if answer["errors"]:
            raise RuntimeError(f"failed calls by status: {answer['errors']}")
        versions: dict[str, int] = dict(sorted(answer["versions"].items()))
        self.result.traffic[f"{phase} #{len(self.result.traffic)}"] = versions
        self.timeline.add("tritonclient", f"{len(rows)} requests ({phase}): answers by version {versions}")
        return versions

    async def drift_until_incident(self, data: DemoData) -> asyncio.Task[None]:
        """Shifted traffic, a round at a time, until the monitor opens an incident on the canary.

        Returns the sender, which finishes the round in flight: the step is done when the incident opens, not when
        the client has sent its last request (the client is awaited before the next traffic check).
        """
        incident = asyncio.Event()

        async def rounds() -> None:
            round_ = 0
            while not incident.is_set():
                await self.traffic("shifted", data.traffic(ROWS_PER_ROUND, SEED + 10 + round_, shifted=True))
                round_ += 1

        sender = asyncio.create_task(rounds())
        waiter = asyncio.create_task(self.log.wait_for(self._incident_on_v2))
        try:
            # Whichever ends first: the incident, or the sender failing (then there is no point waiting).
            await asyncio.wait({sender, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if sender.done():
                sender.result()  # raises the client's failure
            await waiter
        except BaseException:
            sender.cancel()
            raise
        finally:
            waiter.cancel()
            incident.set()
        return sender

    @staticmethod
    def _incident_on_v2(p: Any) -> bool:
        from modelyard.contracts.events.v1 import monitor_events_pb2 as mon

        return bool(
            _is(p, "IncidentChanged")
            and p.version.version == 2
            and p.state == mon.IncidentChanged.STATE_OPENED
            and p.signal in (mon.SIGNAL_DATA_DRIFT, mon.SIGNAL_PREDICTION_DRIFT)
        )

    @staticmethod
    def _rollback_of_v2(p: Any) -> bool:
        return bool(
            _is(p, "RollbackOrdered")
            and p.rolled_back.version == 2
            and p.plan.primary.version == 1
            and not p.plan.HasField("canary")
        )

    async def served_versions(self) -> list[str]:
        from modelyard.contracts.inference import grpc_service_pb2 as inference

        metadata = await self.serving.ModelMetadata(inference.ModelMetadataRequest(name=MODEL))
        return list(metadata.versions)

    async def verify_audit(self) -> None:
        from modelyard.contracts.governance.v1 import governance_service_pb2 as gov

        verified = await self.governance.VerifyAudit(gov.VerifyAuditRequest(), metadata=self.auth("carol"))
        if not verified.ok:
            raise RuntimeError(f"audit chain broken at entry {verified.first_bad_seq}: {verified.problem}")
        self.result.audit_entries = int(verified.entries)
        self.result.audit_checkpoints = int(verified.checkpoints)
        self.timeline.add(
            "governance", f"audit chain intact: {verified.entries} entries, {verified.checkpoints} signed checkpoints"
        )


# --- running it ----------------------------------------------------------------------------------------------


def prepare_work_dir(data_dir: Path) -> Path:
    """A fresh data dir for every run (the embedded broker starts empty, so old registry or governance state would
    not match it); only a directory the demo made itself is ever wiped."""
    data_dir = data_dir.resolve()
    if data_dir.exists() and any(data_dir.iterdir()):
        if not (data_dir / MARKER).exists():
            raise StackError(f"{data_dir} is not empty and was not made by `modelyard demo`: choose another --data-dir")
        state = StackState.load(data_dir)
        if state is not None and state.owner_alive():
            raise StackError(f"a stack (pid {state.pid}) is still running with data dir {data_dir}")
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    (data_dir / MARKER).write_text("made by `modelyard demo`; wiped by the next run\n")
    work = data_dir / "scenario"  # the demo's own files (policy, tokens, traffic) beside the services'
    work.mkdir()
    return work


def demo_settings(work: Path, tokens: dict[str, str]) -> tuple[str, ...]:
    """The services' settings for the demo, as `modelyard up --env SERVICE.KEY=VALUE` options."""
    grants = {name: Identity(token=tokens[name], roles=roles) for name, roles in PRINCIPALS.items()}
    identities = UsersFile(
        users={name: grant for name, grant in grants.items() if name not in SERVICE_PRINCIPALS},
        services={name: grant for name, grant in grants.items() if name in SERVICE_PRINCIPALS},
    )
    (work / "policy.yaml").write_text(POLICY)
    return (
        *identity_settings(identities),
        f"governance.policy_file={work / 'policy.yaml'}",
        "governance.work_interval_s=0.2",
        f"monitor.window_max_events={WINDOW_EVENTS}",
        f"monitor.window_min_events={WINDOW_EVENTS // 2}",
    )


def prepare_demo(options: StackOptions) -> tuple[StackOptions, Path, dict[str, str]]:
    """A fresh work dir, the bearer tokens of the demo's people (also in <work>/tokens.json) and the options of the
    stack that knows them."""
    work = prepare_work_dir(options.data_dir)
    tokens = {name: secrets.token_urlsafe(24) for name in PRINCIPALS}
    # Readable by this user only: with --keep, this is how a person gets to call the stack as carol or alice.
    tokens_file = work / TOKENS_FILE
    tokens_file.touch(mode=0o600)
    tokens_file.write_text(json.dumps(tokens, indent=2))
    return replace(options, env=(*demo_settings(work, tokens), *options.env)), work, tokens


def run_demo(options: StackOptions, *, keep: bool = False, console: Console = out) -> DemoResult:
    """Start the stack, run the loop, print the timeline; with `keep`, leave the stack running until Ctrl-C.

    Raises what `running_stack` raises when the stack itself cannot start.
    """
    options, work, tokens = prepare_demo(options)
    tokens_file = work / TOKENS_FILE
    with running_stack(options) as stack:
        timeline = Timeline(console)
        scenario = Scenario(stack.state, work, tokens, timeline)
        try:
            asyncio.run(scenario.run())
        except StepFailed as exc:
            scenario.result.failure = exc
            timeline.add("demo", f"[red]✗ {exc.step}: {exc.why}[/]")
        result = scenario.result
        result.timeline = list(timeline.entries)
        console.print(_summary(result))
        console.print(f"dashboard: [bold]{result.dashboard_url}[/]")
        if not result.ok:
            console.print(
                f"[red]the loop did not complete[/]; the services' logs are in {stack.state.data_dir / 'logs'}"
            )
        if keep and result.ok:
            console.print(f"bearer tokens of the demo's people: {tokens_file}")
            console.print(
                f"the stack keeps running (`modelyard status --data-dir {stack.state.data_dir}`); Ctrl-C to stop."
            )
            # Ctrl-C is how a kept stack ends: the demo itself succeeded, so it is not an error.
            with contextlib.suppress(KeyboardInterrupt):
                stack.watch()
            console.print("stopping")
    return result


def _summary(result: DemoResult) -> Table:
    done = {entry.what.removeprefix("[green]✓[/] "): entry for entry in result.timeline if entry.actor == "demo"}
    table = Table(title="modelyard demo")
    for column in ("step", "at", "after"):
        table.add_column(column, no_wrap=True)
    failed = result.failure.step if result.failure else None
    for step in STEPS:
        entry = done.get(step)
        if step in result.steps and entry is not None:
            table.add_row(f"[green]✓[/] {step}", f"{entry.at:%H:%M:%S}", f"{entry.elapsed_s:.1f}s")
        elif step == failed:
            table.add_row(f"[red]✗ {step}[/]", "", result.failure.why if result.failure else "")
        else:
            table.add_row(f"[dim]· {step}[/]", "", "")
    return table


def demo(
    keep: Annotated[bool, typer.Option("--keep", help="Leave the stack running afterwards, until Ctrl-C.")] = False,
    data_dir: Annotated[
        Path, typer.Option(help="The demo's own state (wiped at the start of every run).")
    ] = DEFAULT_DEMO_DIR,
    broker_port: Annotated[int, typer.Option(help="Port of the embedded broker (on 127.0.0.1).")] = 9092,
    base_port: Annotated[
        int | None, typer.Option(help="Eight consecutive ports from here, as for `modelyard up`.")
    ] = None,
    port: Annotated[
        list[str] | None,
        typer.Option("--port", metavar="SERVICE.KIND=PORT", help="One port, e.g. serving.grpc=9001; repeatable."),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for every service to be ready.")] = 120.0,
    tls: Annotated[bool, typer.Option(help="Everything over mutual TLS, as `modelyard up --tls`.")] = False,
) -> None:
    """Run the whole loop on this machine: register, approve, serve, drift, roll back, audit."""
    options = StackOptions(
        data_dir=data_dir,
        broker_port=broker_port,
        base_port=base_port,
        ports=tuple(port or ()),
        timeout=timeout,
        tls=tls,
    )
    result: DemoResult | None = None
    with stack_errors_exit():
        result = run_demo(options, keep=keep)
    if result is None or not result.ok:  # None: interrupted
        raise typer.Exit(1)
