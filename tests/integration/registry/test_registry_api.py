"""The registry service over gRPC and REST, on SQLite and PostgreSQL, with real skl2onnx models and a real broker."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import grpc
import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from google.protobuf.timestamp_pb2 import Timestamp

from modelyard.auth import AuthSettings, Role, TokenGrant
from modelyard.contracts.events.v1 import registry_events_pb2 as ev
from modelyard.contracts.registry.v1 import registry_service_pb2 as pb
from modelyard.contracts.registry.v1 import registry_service_pb2_grpc as pb_grpc
from modelyard.events import envelope
from modelyard.registry.testing import RunningService, database_url, digest_of, registry_settings
from modelyard.testing.models import LABEL_COLUMN, TrainedModel

pytestmark = pytest.mark.integration

PUBLISHER, VIEWER = "publisher-token-0123456789abcdef", "viewer-token-0123456789abcdef"
AUTH = AuthSettings(
    tokens={
        PUBLISHER: TokenGrant(principal="alice", roles=frozenset({Role.PUBLISHER, Role.APPROVER})),
        VIEWER: TokenGrant(principal="eve", roles=frozenset({Role.VIEWER})),
    },
    allow_anonymous=False,
)
LIMIT = 4 * 1024 * 1024
CHUNK = 64 * 1024


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str
) -> Iterator[RunningService]:
    with database_url(request, request.param) as url:
        settings = registry_settings(
            tmp_path_factory.mktemp("api"),
            url,
            max_artifact_bytes=LIMIT,
            auth=AUTH,
            kafka_bootstrap=kafka_bootstrap,
            check_interval_s=0.05,
        )
        with RunningService(settings) as running:
            yield running


@pytest.fixture(scope="module")
def stub(service: RunningService) -> Iterator[pb_grpc.RegistryServiceStub]:
    with grpc.insecure_channel(service.grpc_address) as channel:
        yield pb_grpc.RegistryServiceStub(channel)


@pytest.fixture(scope="module")
def http(service: RunningService) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.http_url, headers={"authorization": f"Bearer {PUBLISHER}"}) as client:
        yield client


def auth(token: str = PUBLISHER) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def upload_requests(data: bytes, media_type: str, digest: str = "") -> Iterator[pb.UploadArtifactRequest]:
    header = pb.UploadArtifactRequest.Header(media_type=media_type, digest=digest or digest_of(data), size_bytes=0)
    yield pb.UploadArtifactRequest(header=header)
    for start in range(0, len(data), CHUNK):
        yield pb.UploadArtifactRequest(chunk=data[start : start + CHUNK])


def grpc_code(call: Callable[[], Any]) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value.code()  # type: ignore[no-any-return]


def wait_ready(get: Callable[[], pb.ModelVersion]) -> pb.ModelVersion:
    deadline = time.monotonic() + 20
    while (version := get()).status == ev.MODEL_VERSION_STATUS_PENDING_REGISTRATION:
        assert time.monotonic() < deadline, "registration checks did not finish"
        time.sleep(0.05)
    return version


def fresh_name() -> str:
    return f"m-{uuid.uuid4().hex[:10]}"


def test_grpc_end_to_end(stub: pb_grpc.RegistryServiceStub, onnx_models: dict[str, TrainedModel]) -> None:
    name, model = fresh_name(), onnx_models["breast-cancer"]
    created = stub.CreateRegisteredModel(
        pb.CreateRegisteredModelRequest(name=name, tags={"team": "a"}), metadata=auth()
    )
    assert created.registered_model.created_by == "alice"

    uploaded = stub.UploadArtifact(upload_requests(model.onnx, "application/onnx"), metadata=auth())
    assert uploaded.artifact.digest == model.digest
    assert [d.param or d.value for d in uploaded.artifact.signature.inputs[0].shape.dims] == ["N", 30]
    reference = stub.UploadArtifact(upload_requests(model.reference_csv, "text/csv"), metadata=auth()).artifact
    assert reference.dataset.rows == 200

    request = pb.CreateModelVersionRequest(
        model_name=name,
        artifact_digest=model.digest,
        reference_dataset_digest=reference.digest,
        label_column=LABEL_COLUMN,
        lineage=pb.Lineage(code_revision="abc123", metrics={"auc": 0.99}, environment={"python": "3.11"}),
    )
    version = stub.CreateModelVersion(request, metadata=auth()).model_version
    assert (version.version, version.created_by) == (1, "alice")
    assert list(version.signature.inputs[0].feature_names) == list(model.feature_names)
    ready = wait_ready(
        lambda: (
            stub.GetModelVersion(pb.GetModelVersionRequest(model_name=name, version=1), metadata=auth()).model_version
        )
    )
    assert ready.status == ev.MODEL_VERSION_STATUS_READY and ready.lineage.metrics["auc"] == 0.99

    before_alias = Timestamp()
    before_alias.FromDatetime(datetime.now(UTC))
    stub.SetAlias(pb.SetAliasRequest(model_name=name, alias="production", version=1, reason="go"), metadata=auth())
    resolved = stub.ResolveAlias(pb.ResolveAliasRequest(model_name=name, alias="production"), metadata=auth(VIEWER))
    assert (resolved.version.version, resolved.version.digest) == (1, model.digest)
    past = pb.ResolveAliasRequest(model_name=name, alias="production", as_of=before_alias)
    assert grpc_code(lambda: stub.ResolveAlias(past, metadata=auth())) == grpc.StatusCode.NOT_FOUND
    history = stub.ListAliasHistory(pb.ListAliasHistoryRequest(model_name=name, alias="production"), metadata=auth())
    assert [(m.from_version, m.to_version, m.moved_by, m.reason) for m in history.moves] == [(0, 1, "alice", "go")]

    chunks = list(stub.DownloadArtifact(pb.DownloadArtifactRequest(digest=model.digest), metadata=auth(VIEWER)))
    assert chunks[0].artifact.digest == model.digest
    assert b"".join(c.chunk for c in chunks) == model.onnx

    stub.UpdateTags(pb.UpdateTagsRequest(model_name=name, version=1, set={"stage": "prod"}), metadata=auth())
    search = pb.ListModelVersionsRequest(digest=model.digest, tags={"stage": "prod"})
    found = stub.ListModelVersions(search, metadata=auth()).model_versions
    assert [(v.model_name, v.version) for v in found] == [(name, 1)]
    models = stub.ListRegisteredModels(pb.ListRegisteredModelsRequest(name_contains=name), metadata=auth())
    assert models.registered_models[0].aliases == {"production": 1}


def test_grpc_errors(stub: pb_grpc.RegistryServiceStub, onnx_models: dict[str, TrainedModel]) -> None:
    name, model = fresh_name(), onnx_models["iris"]
    create = pb.CreateRegisteredModelRequest(name=name)
    assert grpc_code(lambda: stub.CreateRegisteredModel(create)) == grpc.StatusCode.UNAUTHENTICATED
    assert (
        grpc_code(lambda: stub.CreateRegisteredModel(create, metadata=auth("wrong"))) == grpc.StatusCode.UNAUTHENTICATED
    )
    assert (
        grpc_code(lambda: stub.CreateRegisteredModel(create, metadata=auth(VIEWER)))
        == grpc.StatusCode.PERMISSION_DENIED
    )
    stub.CreateRegisteredModel(create, metadata=auth())
    assert grpc_code(lambda: stub.CreateRegisteredModel(create, metadata=auth())) == grpc.StatusCode.ALREADY_EXISTS
    bad = pb.CreateRegisteredModelRequest(name="no/slashes")
    assert grpc_code(lambda: stub.CreateRegisteredModel(bad, metadata=auth())) == grpc.StatusCode.INVALID_ARGUMENT
    missing = pb.GetModelVersionRequest(model_name=name, version=9)
    assert grpc_code(lambda: stub.GetModelVersion(missing, metadata=auth())) == grpc.StatusCode.NOT_FOUND

    def upload(data: bytes, media: str = "application/onnx", digest: str = "") -> Callable[[], Any]:
        return lambda: stub.UploadArtifact(upload_requests(data, media, digest), metadata=auth())

    assert grpc_code(upload(model.onnx, digest=digest_of(b"x"))) == grpc.StatusCode.DATA_LOSS
    assert grpc_code(upload(b"\0" * (LIMIT + 1))) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert grpc_code(upload(b"not onnx at all")) == grpc.StatusCode.INVALID_ARGUMENT
    headerless = iter([pb.UploadArtifactRequest(chunk=b"x")])
    assert grpc_code(lambda: stub.UploadArtifact(headerless, metadata=auth())) == grpc.StatusCode.INVALID_ARGUMENT


def test_grpc_concurrent_registrations(stub: pb_grpc.RegistryServiceStub, onnx_models: dict[str, TrainedModel]) -> None:
    name, model = fresh_name(), onnx_models["diabetes"]
    stub.CreateRegisteredModel(pb.CreateRegisteredModelRequest(name=name), metadata=auth())
    stub.UploadArtifact(upload_requests(model.onnx, "application/onnx"), metadata=auth())

    def register(_: int) -> int:
        request = pb.CreateModelVersionRequest(model_name=name, artifact_digest=model.digest)
        return int(stub.CreateModelVersion(request, metadata=auth()).model_version.version)

    with ThreadPoolExecutor(8) as pool:
        versions = sorted(pool.map(register, range(12)))
    assert versions == list(range(1, 13))


def test_rest_end_to_end(http: httpx.Client, onnx_models: dict[str, TrainedModel]) -> None:
    name, model = fresh_name(), onnx_models["iris"]
    assert http.post("/v1/models", json={"name": name}).status_code == 201
    response = http.post(
        "/v1/artifacts",
        params={"digest": model.digest},
        content=model.onnx,
        headers={"content-type": "application/onnx"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["signature"]["inputs"][0]["shape"]["dims"][0] == {"param": "N"}
    created = http.post(f"/v1/models/{name}/versions", json={"artifact_digest": model.digest, "tags": {"a": "b"}})
    assert created.status_code == 201, created.text
    assert created.json()["version"] == "1"  # int64 in protobuf JSON is a string

    deadline = time.monotonic() + 20
    while http.get(f"/v1/models/{name}/versions/1").json()["status"] != "MODEL_VERSION_STATUS_READY":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert http.put(f"/v1/models/{name}/aliases/candidate", json={"version": 1}).status_code == 200
    assert http.get(f"/v1/models/{name}/aliases/candidate").json()["digest"] == model.digest
    history = http.get(f"/v1/models/{name}/aliases/candidate/history").json()
    assert history["moves"][0]["to_version"] == "1"
    download = http.get(f"/v1/artifacts/{model.digest}")
    assert download.content == model.onnx
    assert http.patch(f"/v1/models/{name}/versions/1/tags", json={"set": {"x": "y"}}).json() == {"a": "b", "x": "y"}
    listed = http.get(f"/v1/models/{name}/versions", params={"status": "READY"}).json()
    assert [v["version"] for v in listed["model_versions"]] == ["1"]
    assert "/v1/models/{name}/versions" in http.get("/openapi.json").json()["paths"]


def test_rest_errors(http: httpx.Client, service: RunningService) -> None:
    name = fresh_name()
    assert http.post("/v1/models", json={"name": name}).status_code == 201
    duplicate = http.post("/v1/models", json={"name": name})
    assert (duplicate.status_code, duplicate.json()["code"]) == (409, "ALREADY_EXISTS")
    assert http.get(f"/v1/models/{fresh_name()}").status_code == 404
    assert http.post("/v1/models", json={"name": "bad name"}).status_code == 400
    anonymous = httpx.post(f"{service.http_url}/v1/models", json={"name": fresh_name()})
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Bearer")
    viewer = httpx.post(
        f"{service.http_url}/v1/models", json={"name": fresh_name()}, headers={"authorization": f"Bearer {VIEWER}"}
    )
    assert viewer.status_code == 403
    mismatch = http.post(
        "/v1/artifacts", params={"digest": digest_of(b"other")}, content=b"abc", headers={"content-type": "text/csv"}
    )
    assert mismatch.status_code == 422
    big = b"\0" * (LIMIT + 1)
    oversized = http.post(
        "/v1/artifacts", params={"digest": digest_of(big)}, content=big, headers={"content-type": "application/onnx"}
    )
    assert oversized.status_code == 413


def test_events_reach_the_topic(stub: pb_grpc.RegistryServiceStub, kafka_bootstrap: str) -> None:
    name = fresh_name()
    stub.CreateRegisteredModel(pb.CreateRegisteredModelRequest(name=name), metadata=auth())

    async def first_event() -> str:
        consumer = AIOKafkaConsumer(
            "modelyard.registry.events", bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            async with asyncio.timeout(30):
                async for record in consumer:
                    if record.key != name.encode():
                        continue  # other tests' events, and the poison some put on the topic on purpose
                    return envelope.decode(record.key, record.value, record.headers).type
        finally:
            await consumer.stop()
        raise AssertionError("unreachable")

    assert asyncio.run(first_event()) == "modelyard.events.v1.RegisteredModelCreated"


def test_upload_cut_off_half_way_over_grpc_leaves_nothing(
    stub: pb_grpc.RegistryServiceStub, service: RunningService
) -> None:
    staging = service.settings.resolved_artifacts_dir / "staging"
    half_sent, released = threading.Event(), threading.Event()
    data = b"x" * (CHUNK * 8)

    def requests() -> Iterator[pb.UploadArtifactRequest]:
        header = pb.UploadArtifactRequest.Header(media_type="text/csv", digest=digest_of(data))
        yield pb.UploadArtifactRequest(header=header)
        for start in range(0, len(data) // 2, CHUNK):
            yield pb.UploadArtifactRequest(chunk=data[start : start + CHUNK])
        half_sent.set()
        released.wait(30)  # the client stalls half way, then gives up (below)

    call = stub.UploadArtifact.future(requests(), metadata=auth())
    assert half_sent.wait(10)
    deadline = time.monotonic() + 10
    while not list(staging.iterdir()):  # the server is holding the partial upload
        assert time.monotonic() < deadline, "the partial upload never reached the server"
        time.sleep(0.01)
    call.cancel()
    released.set()
    while list(staging.iterdir()):
        assert time.monotonic() < deadline, f"staged bytes left behind: {list(staging.iterdir())}"
        time.sleep(0.01)
    assert not list((service.settings.resolved_artifacts_dir / "sha256").rglob(digest_of(data)[7:]))
