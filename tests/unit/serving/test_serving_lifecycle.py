"""Deployments, routing and the plan lifecycle with fakes through the ports: swap, reuse, drain, refusal."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from modelyard.contracts.inference import grpc_service_pb2 as pb
from modelyard.errors import ErrorKind
from modelyard.retry import Backoff
from modelyard.serving.adapters.memory import InMemoryStatus
from modelyard.serving.dataplane import DataPlane, ShadowRunner
from modelyard.serving.domain.deployment import ModelManager, canary_bucket
from modelyard.serving.domain.errors import InvalidArgument, NotFound, PlanSourceError, Unavailable
from modelyard.serving.domain.model import Plan, Signature, TensorSpec, VersionRef
from modelyard.serving.domain.ports import NoMetrics
from modelyard.serving.domain.stream import PredictionBuffer
from modelyard.serving.domain.tensors import Array, to_raw
from modelyard.serving.handlers import ExecutionPolicy, Lifecycle, LoadFailed

pytestmark = pytest.mark.unit

SIGNATURE = Signature((TensorSpec("x", "FP32", (-1, 2)),), (TensorSpec("y", "FP32", (-1, 2)),))


class FakeRunner:
    """Answers x + its version number; fails on a 7, refuses a 5 (warm-up feeds zeros)."""

    def __init__(self, version: int) -> None:
        self.version = version
        self.closed = False

    @property
    def signature(self) -> Signature:
        return SIGNATURE

    def run(self, inputs: Mapping[str, Array], outputs: Sequence[str]) -> list[Array]:
        if (np.asarray(inputs["x"]) == 7).any():
            raise RuntimeError("boom")
        if (np.asarray(inputs["x"]) == 5).any():
            raise InvalidArgument("input 'x': five is not allowed")
        return [np.asarray(inputs["x"]) + self.version]

    def close(self) -> None:
        self.closed = True


class FakeLoader:
    def __init__(self) -> None:
        self.loaded: list[VersionRef] = []
        self.runners: dict[VersionRef, FakeRunner] = {}

    def load(self, ref: VersionRef, artifact: bytes) -> FakeRunner:
        if artifact == b"not onnx":
            raise ValueError("not a model")
        self.loaded.append(ref)
        runner = self.runners[ref] = FakeRunner(int(artifact.decode()))
        return runner


class DictArtifacts:
    def __init__(self) -> None:
        self.blobs: dict[tuple[str, int], bytes] = {}

    def add(self, model: str, version: int, blob: bytes | None = None) -> VersionRef:
        blob = blob if blob is not None else str(version).encode()
        self.blobs[(model, version)] = blob
        return VersionRef(model, version, "sha256:" + hashlib.sha256(blob).hexdigest())

    async def fetch(self, ref: VersionRef) -> bytes:
        try:
            return self.blobs[(ref.model, ref.version)]
        except KeyError:
            raise OSError(f"no artifact for {ref}") from None

    async def close(self) -> None:
        pass


class NoPlans:
    async def plans(self) -> list[Plan]:
        return []

    async def close(self) -> None:
        pass


Parts = tuple[Lifecycle, FakeLoader, DictArtifacts, InMemoryStatus]


@pytest.fixture
def parts() -> Parts:
    loader, artifacts, status = FakeLoader(), DictArtifacts(), InMemoryStatus()
    policy = ExecutionPolicy(pool=ThreadPoolExecutor(1), inline_below_s=1.0, drain_timeout_s=5.0)
    lifecycle = Lifecycle(ModelManager(), artifacts, loader, NoPlans(), status, NoMetrics(), policy)
    return lifecycle, loader, artifacts, status


def request(model: str = "m", request_id: str = "", version: str = "", value: float = 0) -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name=model, id=request_id, model_version=version)
    message.inputs.add(name="x", datatype="FP32", shape=[1, 2])
    message.raw_input_contents.append(to_raw(np.full((1, 2), value, np.float32)))
    return message


async def test_swap_reuses_loaded_versions_and_unloads_the_rest(parts: Parts) -> None:
    lifecycle, loader, artifacts, status = parts
    v1, v2 = artifacts.add("m", 1), artifacts.add("m", 2)

    await lifecycle.enact(Plan("m", 1, v1))
    await lifecycle.enact(Plan("m", 2, v1, canary=v2, canary_weight=0.5))
    await lifecycle.enact(Plan("m", 3, v2))  # promotion: the canary's session is kept, not reloaded

    assert loader.loaded == [v1, v2]
    assert status.of("loaded") == [v1, v2] and status.of("unloaded") == [v1]
    assert loader.runners[v1].closed and not loader.runners[v2].closed
    assert not await lifecycle.enact(Plan("m", 3, v1))  # not newer than what is served: ignored


async def test_digest_mismatch_is_refused_and_reported(parts: Parts) -> None:
    lifecycle, _, artifacts, status = parts
    v1 = artifacts.add("m", 1)
    artifacts.add("m", 2)
    await lifecycle.enact(Plan("m", 1, v1))

    with pytest.raises(LoadFailed, match="plan names sha256:bad") as caught:
        await lifecycle.enact(Plan("m", 2, VersionRef("m", 2, "sha256:bad")))

    assert not caught.value.transient
    assert status.of("load_failed") == [VersionRef("m", 2, "sha256:bad")]
    assert lifecycle.manager.get("m").plan.revision == 1  # type: ignore[union-attr]


async def test_an_artifact_that_is_no_model_is_refused(parts: Parts) -> None:
    lifecycle, _, artifacts, status = parts
    with pytest.raises(LoadFailed, match="not a model"):
        await lifecycle.enact(Plan("m", 1, artifacts.add("m", 1, b"not onnx")))
    assert len(status.of("load_failed")) == 1 and lifecycle.manager.get("m") is None


async def test_missing_artifact_is_a_transient_failure(parts: Parts) -> None:
    lifecycle, *_ = parts
    with pytest.raises(LoadFailed) as caught:
        await lifecycle.enact(Plan("m", 1, VersionRef("m", 1, "sha256:x")))
    assert caught.value.transient


async def test_a_replaced_version_finishes_its_requests_before_it_is_unloaded(parts: Parts) -> None:
    lifecycle, loader, artifacts, status = parts
    v1, v2 = artifacts.add("m", 1), artifacts.add("m", 2)
    await lifecycle.enact(Plan("m", 1, v1))
    _, old = lifecycle.manager.resolve("m", "", "")
    old.enter()  # a request is running on v1

    swap = asyncio.create_task(lifecycle.enact(Plan("m", 2, v2)))
    await asyncio.sleep(0.05)
    assert lifecycle.manager.resolve("m", "", "")[1].ref == v2  # new requests already go to v2
    assert not swap.done() and not loader.runners[v1].closed

    old.leave()
    await swap
    assert loader.runners[v1].closed and status.of("unloaded") == [v1]


def test_canary_buckets_are_stable_and_spread() -> None:
    assert canary_bucket("user-1") == canary_bucket("user-1")
    share = sum(canary_bucket(f"user-{i}") < 2**32 * 0.1 for i in range(10_000)) / 10_000
    assert 0.08 < share < 0.12


async def test_dataplane_routes_pins_records_and_shadows(parts: Parts) -> None:
    lifecycle, _, artifacts, _ = parts
    v1, v2, v3 = artifacts.add("m", 1), artifacts.add("m", 2), artifacts.add("m", 3)
    await lifecycle.enact(Plan("m", 1, v1, canary=v2, canary_weight=0.0, shadow=v3))
    stream = PredictionBuffer(100, NoMetrics())
    shadows = ShadowRunner(10, stream)
    plane = DataPlane(lifecycle.manager, stream, shadows)
    shadow_task = asyncio.create_task(shadows.run())

    response = await plane.infer(request(request_id="r1"), traceparent="00-abc")
    pinned = await plane.infer(request(version="2"))
    with pytest.raises(NotFound):
        await plane.infer(request(version="9"))
    with pytest.raises(InvalidArgument):
        await plane.infer(pb.ModelInferRequest(model_name="m"))  # no inputs
    await asyncio.sleep(0.1)
    shadow_task.cancel()

    assert response.model_version == "1" and pinned.model_version == "2"
    assert np.frombuffer(response.raw_output_contents[0], np.float32).tolist() == [1.0, 1.0]
    predictions = stream.take(10)
    recorded = [(p.request_id, p.ref.version, p.status_code) for p in predictions]
    assert ("r1", 1, ErrorKind.OK) in recorded and ("", 2, ErrorKind.OK) in recorded
    assert ("", 1, ErrorKind.INVALID_ARGUMENT) in recorded
    assert ("r1", 3, ErrorKind.OK) in recorded  # the shadow copy, recorded under its own version
    assert all(p.traceparent == "00-abc" for p in predictions if p.request_id == "r1")
    assert {p.plan_revision for p in predictions} == {1}  # the plan that routed each, shadow copies included


async def test_a_model_that_raises_is_internal(parts: Parts) -> None:
    lifecycle, _, artifacts, _ = parts
    await lifecycle.enact(Plan("m", 1, artifacts.add("m", 1)))
    with pytest.raises(Exception, match="model 'm' version 1 failed: boom") as caught:
        await DataPlane(lifecycle.manager).infer(request(value=7))
    assert caught.value.kind == ErrorKind.INTERNAL  # type: ignore[attr-defined]
    with pytest.raises(InvalidArgument, match="five"):  # the runner's own validation keeps its code
        await DataPlane(lifecycle.manager).infer(request(value=5))


class FlakyPlans:
    """Away (UNAVAILABLE) for the first `away` calls, then answers `plans`; or refuses (not transient)."""

    def __init__(self, plans: list[Plan], away: int, *, transient: bool = True) -> None:
        self.answer, self.away, self.transient, self.calls = plans, away, transient, 0

    async def plans(self) -> list[Plan]:
        self.calls += 1
        if self.calls <= self.away:
            raise PlanSourceError("governance: UNAVAILABLE", transient=self.transient)
        return self.answer

    async def close(self) -> None:
        pass


async def test_startup_plans_are_asked_again_while_the_source_is_away(parts: Parts) -> None:
    lifecycle, _, artifacts, _ = parts
    v1 = artifacts.add("m", 1)
    lifecycle.plans = source = FlakyPlans([Plan("m", 1, v1)], away=2)
    await lifecycle.load_startup_plans(Backoff(first_s=0.001, max_s=0.002, deadline_s=1.0))
    assert source.calls == 3 and lifecycle.manager.get("m") is not None


@pytest.mark.parametrize("transient", [True, False])
async def test_startup_gives_up_visibly_when_the_source_stays_away_or_refuses(parts: Parts, transient: bool) -> None:
    lifecycle, _, _, _ = parts
    lifecycle.plans = source = FlakyPlans([], away=1000, transient=transient)
    retry = Backoff(first_s=0.001, max_s=0.002, deadline_s=0.02)
    with pytest.raises(PlanSourceError):
        await lifecycle.load_startup_plans(retry)
    assert source.calls == (len(retry.waits()) + 1 if transient else 1)  # a refusal is not asked again


def test_backoff_doubles_up_to_its_cap_within_its_deadline() -> None:
    assert Backoff(first_s=1, max_s=4, deadline_s=20).waits() == [1, 2, 4, 4, 4, 4]
    assert Backoff(deadline_s=0).waits() == []


async def test_a_planned_model_whose_artifact_is_away_is_unavailable_then_served_once_it_comes(parts: Parts) -> None:
    lifecycle, _, artifacts, status = parts
    lifecycle.load_retry = Backoff(first_s=0.01, max_s=0.02)
    v1 = VersionRef("m", 1, "sha256:" + hashlib.sha256(b"1").hexdigest())  # its artifact is not there yet
    lifecycle.plans = FlakyPlans([Plan("m", 1, v1)], away=0)
    manager = lifecycle.manager
    with pytest.raises(Unavailable, match="serving is loading its deployment plans"):
        manager.resolve("m", "", "")  # before the startup plans: any model may be one of them
    await lifecycle.load_startup_plans()
    assert manager.started and manager.missing_models() == ["m"]
    with pytest.raises(Unavailable, match="planned but not loaded yet"):
        manager.resolve("m", "", "")
    assert ("m", "", "UNAVAILABLE", "artifacts retried") in lifecycle.index(ready_only=False)
    with pytest.raises(NotFound):
        manager.resolve("other", "", "")  # once started, a model nobody planned is not found
    artifacts.add("m", 1)  # the source is back
    async with asyncio.timeout(5):
        while manager.get("m") is None:  # noqa: ASYNC110  (the retry is a background task of the lifecycle)
            await asyncio.sleep(0.01)
    assert manager.missing_models() == [] and manager.resolve("m", "", "")[1].ref == v1
    assert status.of("load_failed")[0] == v1 and status.of("loaded") == [v1]  # every failed fetch was reported
    await lifecycle.close()


async def test_a_plan_refused_for_good_is_not_waited_for(parts: Parts) -> None:
    lifecycle, _, artifacts, _ = parts
    bad = artifacts.add("m", 1, b"not onnx")
    lifecycle.plans = FlakyPlans([Plan("m", 1, bad)], away=0)
    await lifecycle.load_startup_plans()
    assert lifecycle.manager.missing_models() == []  # failed visibly (ModelLoadFailed): readiness not held back
