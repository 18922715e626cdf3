"""Zero failed requests while the deployment changes under concurrent load: new version, canary, promotion."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from modelyard.serving.adapters.plans import plan_from_message
from modelyard.serving.testing import (
    Harness,
    InferenceLoad,
    ModelRepository,
    infer_request,
    plan,
    serving_on_loopback,
    variant,
)
from modelyard.testing.models import TrainedModel

pytestmark = pytest.mark.integration

CLIENTS = 16


EXECUTION = {
    "inline": {"inline_below_us": 1e9, "max_batch_rows": 1},
    # Every version in the worker pool, where requests really overlap a swap.
    "pool": {"inline_below_us": 0, "max_batch_rows": 1},
    "batched": {"inline_below_us": 0, "batch_overhead_us": 0},
}


@pytest.fixture(params=list(EXECUTION))
async def served(request: pytest.FixtureRequest, tmp_path: Path, breast_cancer: TrainedModel) -> AsyncIterator[Harness]:
    repository = ModelRepository(tmp_path)
    repository.write_plans(plan(repository.add("bc", 1, breast_cancer.onnx)))
    async with serving_on_loopback(repository, **EXECUTION[request.param]) as harness:
        yield harness


async def test_no_request_fails_across_a_version_change_and_a_canary(
    served: Harness,
    breast_cancer: TrainedModel,
) -> None:
    core, status, stub, repository = served.core, served.status, served.stub, served.repository
    v1 = plan(repository.add("bc", 1, breast_cancer.onnx)).primary
    v2 = repository.add("bc", 2, variant(breast_cancer.onnx, "v2"))
    v3 = repository.add("bc", 3, variant(breast_cancer.onnx, "v3"))
    load = InferenceLoad("bc", breast_cancer.sample)
    clients = [asyncio.create_task(load.client(stub, n)) for n in range(CLIENTS)]
    steps = [
        plan(v2, revision=2),
        plan(v2, revision=3, canary=v3, canary_weight=0.5),
        plan(v3, revision=4),
        plan(v1, revision=5, shadow=v3),  # rollback, with the rolled-back version as a shadow
    ]
    async with asyncio.timeout(60):
        for step in steps:
            await asyncio.sleep(0.3)
            assert await core.lifecycle.enact(plan_from_message(step))
        await load.finish(clients)

    assert load.failures == []
    assert set(load.answered) == {"1", "2", "3"}
    assert sum(load.answered.values()) > 100
    assert [ref.version for ref in status.of("loaded")] == [1, 2, 3, 1]
    assert [ref.version for ref in status.of("unloaded")] == [1, 2]  # v3 stays as the shadow
    assert all(v.in_flight == 0 for d in core.manager for v in d.versions)


async def test_canary_is_sticky_per_request_id_and_versions_can_be_pinned(
    served: Harness,
    breast_cancer: TrainedModel,
) -> None:
    core, stub, repository = served.core, served.stub, served.repository
    v1 = plan(repository.add("bc", 1, breast_cancer.onnx)).primary
    v2 = repository.add("bc", 2, variant(breast_cancer.onnx, "v2"))
    await core.lifecycle.enact(plan_from_message(plan(v1, revision=2, canary=v2, canary_weight=0.3)))
    rows = breast_cancer.sample[:1]

    async def version_for(request_id: str, pinned: str = "") -> str:
        return (await stub.ModelInfer(infer_request("bc", rows, request_id=request_id, version=pinned))).model_version

    first = {i: await version_for(f"user-{i}") for i in range(200)}
    again = {i: await version_for(f"user-{i}") for i in range(200)}

    assert first == again
    share = sum(v == "2" for v in first.values()) / len(first)
    assert 0.2 < share < 0.4
    assert {await version_for(f"user-{i}", pinned="2") for i in range(20)} == {"2"}
    assert np.isclose(core.manager.get("bc").plan.canary_weight, 0.3)  # type: ignore[union-attr]
