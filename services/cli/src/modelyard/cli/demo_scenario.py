"""The demo's scenario: the steps of the loop, each with a deadline, as the people and the services take them.

`Scenario.run` is the whole loop; the tests and the soak bench call its steps (`serve`, `traffic`, ...) on a stack of
their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import grpc

from modelyard.cli.demo_data import (
    LABEL_COLUMN,
    SEED,
    SHIFT_SD,
    SHIFTED_FEATURES,
    DemoData,
    TrainedVersion,
    load_data,
    train,
)
from modelyard.cli.demo_timeline import DemoResult, EventLog, StepFailed, Timeline
from modelyard.cli.stack import StackState, trusted_keys
from modelyard.tls import grpc_aio_channel

if TYPE_CHECKING:
    import numpy as np

T = TypeVar("T")

MODEL = "breast-cancer"
ALIAS = "production"
CANARY_WEIGHT = 0.2
ROWS_PER_ROUND = 300  # one tritonclient run

# Deadlines in seconds, generous: the machine may be shared, and every wait ends as soon as its event arrives.
DEADLINE_REGISTER = 90.0
DEADLINE_CHECKS = 180.0
DEADLINE_DECISION = 90.0
DEADLINE_LOAD = 120.0
DEADLINE_TRAFFIC = 180.0
DEADLINE_DRIFT = 300.0
DEADLINE_UNLOAD = 120.0
DEADLINE_AUDIT = 60.0


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
        if not part:
            self.result.steps.append(name)
            self.timeline.add("demo", f"[green]✓[/] {name}")
        return value

    async def run(self, *, full: bool = True, retrain: bool = True) -> None:
        """The whole loop; without `full`, only up to "traffic answered by v1" (a first version, served); without
        `retrain`, up to the rollback and the audit (ROLLBACK_STEPS)."""
        from modelyard.cli.demo_retrain import Retraining

        async with self.connected():
            data, v2 = await self._first_version()
            if full:
                await self._canary_drift_rollback(data, v2)
                if retrain:
                    await Retraining(self, data).run()
                await self.step("audit chain verified", DEADLINE_AUDIT, self.verify_audit())

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

    async def register(
        self, data: DemoData, model: TrainedVersion, expected_version: int, reference_csv: bytes | None = None
    ) -> None:
        """Register `model` with the training data as its reference, or `reference_csv` when given."""
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
        if reference_csv is None:
            reference_csv = data.csv(data.x_train, data.y_train, features)
        reference = await self.upload(reference_csv, "text/csv")
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
        """Until every serving worker loaded `version` (each reports as a replica of its own)."""

        def failed(p: Any) -> str | None:
            ok = _is(p, "ModelLoadFailed") and p.version.version == version
            return f"serving could not load v{version}: {p.reason}" if ok else None

        await self.log.wait_for(self._on_every_worker("ModelLoaded", version), failed)

    async def unloaded(self, version: int) -> None:
        await self.log.wait_for(self._on_every_worker("ModelUnloaded", version))

    def _on_every_worker(self, event: str, version: int) -> Callable[[Any], bool]:
        """Accepts the event that completes `event` of `version` on all of serving's workers (each event once)."""
        replicas: set[str] = set()
        workers = self.state.services["serving"].workers

        def seen(p: Any) -> bool:
            if _is(p, event) and p.version.version == version:
                replicas.add(p.replica)
            return len(replicas) >= workers

        return seen

    async def traffic(self, phase: str, rows: np.ndarray[Any, Any]) -> dict[str, int]:
        """`rows` as single-row requests through stock tritonclient (a process of its own: see demo_traffic)."""
        import numpy as np

        tag = self.traffic_tag(phase)
        path = self.work / f"traffic-{tag}.npy"
        np.save(path, rows)
        tls = self.state.tls
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "modelyard.cli.demo_traffic",
            self.state.services["serving"].grpc,
            MODEL,
            str(path),
            tag,
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

    def traffic_tag(self, phase: str) -> str:
        """The request ids of the next `traffic` call are `<tag>-<row>`."""
        return f"{phase.replace(' ', '-')}-{len(self.result.traffic)}"

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
