"""A replica whose planned model cannot be fetched at startup (its artifact source away) is not ready and answers
UNAVAILABLE for it, keeps trying, and serves it as soon as the artifact is there: no load call needed.

The whole serving service on the test broker; the local model directory stands in for the registry.
"""

from __future__ import annotations

import grpc
import httpx
import pytest

from modelyard.contracts.events.v1 import common_pb2
from modelyard.contracts.inference import grpc_service_pb2 as pb
from modelyard.contracts.inference import grpc_service_pb2_grpc as pb_grpc
from modelyard.kafka.admin import ensure_topics
from modelyard.serving import bootstrap as serving_bootstrap
from modelyard.serving.testing import (
    ModelRepository,
    digest,
    eventually,
    infer_request,
    plan,
    service_settings,
    variant,
)
from modelyard.testing.models import TrainedModel

pytestmark = pytest.mark.integration


async def test_a_model_whose_artifact_is_away_is_unavailable_until_it_comes_back(
    repository: ModelRepository, kafka_bootstrap: str, breast_cancer: TrainedModel
) -> None:
    await ensure_topics(kafka_bootstrap)
    served = repository.add("breast_cancer", 1, breast_cancer.onnx)
    artifact = variant(breast_cancer.onnx, "late")
    late = common_pb2.ModelVersionRef(model_name="late", version=1, digest=digest(artifact))
    repository.write_plans(plan(served), plan(late))  # `late`'s artifact is not in the model directory yet
    settings = service_settings(repository.root, kafka_bootstrap, stream_enabled=False, artifact_retry_max_s=0.5)
    service = serving_bootstrap.service(serving_bootstrap.build(settings))
    async with (
        service.running(),
        grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc.port}") as channel,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.http.port}") as http,
    ):
        stub = pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]

        async def readiness() -> httpx.Response:
            return await http.get("/readyz")

        async def only_the_missing_model_holds_readiness() -> bool:
            return set((await readiness()).json()["failing"]) == {"planned-models"}

        # The other model is served; `late` is planned but missing: UNAVAILABLE (retry), and the replica not ready.
        await eventually(only_the_missing_model_holds_readiness)
        assert (await stub.ModelInfer(infer_request("breast_cancer", breast_cancer.sample[:1]))).model_version == "1"
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.ModelInfer(infer_request("late", breast_cancer.sample[:1]))
        assert missing.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "planned but not loaded yet" in (missing.value.details() or "")
        assert (await readiness()).status_code == 503
        index = await stub.RepositoryIndex(pb.RepositoryIndexRequest())
        assert ("late", "UNAVAILABLE") in {(m.name, m.state) for m in index.models}

        repository.add("late", 1, artifact)  # the source is back: the background retry picks it up, nobody calls load

        async def ready() -> bool:
            return (await readiness()).status_code == 200

        await eventually(ready)
        answer = await stub.ModelInfer(infer_request("late", breast_cancer.sample[:1]))
        assert answer.model_name == "late" and answer.model_version == "1"
