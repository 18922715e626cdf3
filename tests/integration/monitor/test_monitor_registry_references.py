"""Reference profiles from the registry: a real registry gRPC server on loopback, a real skl2onnx model registered
with its reference CSV, and the monitor's `RegistryReferenceSource` (also wired through `build`)."""

from __future__ import annotations

import asyncio
import io
import socket
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pyarrow.csv as pa_csv
import pytest
from pydantic import SecretStr

from modelyard.contracts.registry.v1 import registry_service_pb2_grpc as pb_grpc
from modelyard.monitor.adapters.registry_references import RegistryReferenceSource
from modelyard.monitor.bootstrap import build, service
from modelyard.monitor.config import MonitorSettings
from modelyard.monitor.domain.errors import ReferenceNotFound, ReferenceUnavailable
from modelyard.monitor.domain.profile import Kind, build_profile
from modelyard.monitor.domain.profile import Role as FeatureRole
from modelyard.monitor.testing import setting_values, until
from modelyard.registry.testing import PUBLISHER_TOKEN, READER_TOKEN, RunningService, reading_registry, register
from modelyard.testing.models import TrainedModel

pytestmark = pytest.mark.integration

PUBLISHER, MONITOR = PUBLISHER_TOKEN, READER_TOKEN


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[RunningService]:
    with reading_registry(tmp_path_factory.mktemp("registry"), kafka_bootstrap) as running:
        yield running


@pytest.fixture(scope="module")
def stub(registry: RunningService) -> Iterator[pb_grpc.RegistryServiceStub]:
    with grpc.insecure_channel(registry.grpc_address) as channel:
        yield pb_grpc.RegistryServiceStub(channel)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_profile_from_the_registry_matches_the_registered_csv(
    registry: RunningService, stub: pb_grpc.RegistryServiceStub, onnx_models: dict[str, TrainedModel]
) -> None:
    model = onnx_models["breast-cancer"]
    name, version = register(stub, model, PUBLISHER)
    source = RegistryReferenceSource(registry.grpc_address, MONITOR)
    try:
        data = source.load(name, version)
    finally:
        source.close()

    # skl2onnx names the one input "X"; feature j of it is element j of X in a prediction record, the label is no
    # feature of the model.
    csv = pa_csv.read_csv(io.BytesIO(model.reference_csv))
    expected = {f"X[{j}]": csv[feature].to_numpy().astype(np.float64) for j, feature in enumerate(model.feature_names)}
    assert data.source == f"registry:{model.reference_digest}"
    assert sorted(data.columns) == sorted(expected)
    for column, values in expected.items():
        np.testing.assert_array_equal(data.columns[column], values)

    # The features keep their registered names: the dashboard, the evidence and the APIs say "mean radius".
    assert data.names == {f"X[{j}]": feature for j, feature in enumerate(model.feature_names)}
    profile = build_profile(name, version, data.columns, source=data.source, names=data.names)
    assert profile.id == build_profile(name, version, expected, source=data.source, names=data.names).id
    assert {(f.name, f.tensor, f.index, f.kind, f.role) for f in profile.features} == {
        (feature, "X", j, Kind.NUMERIC, FeatureRole.INPUT) for j, feature in enumerate(model.feature_names)
    }
    assert type(profile).from_bytes(profile.to_bytes()).features == profile.features
    mean_radius = profile.numeric["mean radius"]
    np.testing.assert_array_equal(mean_radius.sorted_values, np.sort(expected["X[0]"]))
    assert mean_radius.n == csv.num_rows == 200


def test_monitor_wired_to_the_registry_profiles_and_stores_the_reference(
    registry: RunningService,
    stub: pb_grpc.RegistryServiceStub,
    onnx_models: dict[str, TrainedModel],
    tmp_path: Path,
) -> None:
    model = onnx_models["iris"]
    name, version = register(stub, model, PUBLISHER)
    settings = MonitorSettings(
        data_dir=tmp_path,
        reference_source="registry",
        registry_address=registry.grpc_address,
        registry_token=SecretStr(MONITOR),
        kafka_required=False,
    )
    parts = build(settings)
    assert isinstance(parts.profiles.source, RegistryReferenceSource)
    try:
        profile = parts.monitor.rebaseline(name, version)
        assert sorted(profile.numeric) == sorted(model.feature_names)
        assert {f.column for f in profile.features} == {f"X[{j}]" for j in range(4)}
        assert profile.source == f"registry:{model.reference_digest}"
        stored = parts.store.active_profile(name, version)
        assert stored is not None and stored.id == profile.id
    finally:
        parts.profiles.close()
        parts.engine.dispose()


def test_missing_and_unreachable_references_are_told_apart(
    registry: RunningService, stub: pb_grpc.RegistryServiceStub, onnx_models: dict[str, TrainedModel]
) -> None:
    name, version = register(stub, onnx_models["diabetes"], PUBLISHER, with_reference=False)
    source = RegistryReferenceSource(registry.grpc_address, MONITOR)
    try:
        with pytest.raises(ReferenceNotFound, match="no reference dataset"):
            source.load(name, version)
        with pytest.raises(ReferenceNotFound, match="NOT_FOUND"):
            source.load(name, version + 1)
    finally:
        source.close()
    # A registry that refuses the token, or is not there at all, may answer later: the monitor asks again.
    for unavailable in (
        RegistryReferenceSource(registry.grpc_address, "wrong-token-0123456789abcdef"),
        RegistryReferenceSource(f"127.0.0.1:{free_port()}", MONITOR, timeout_s=2.0),
    ):
        try:
            with pytest.raises(ReferenceUnavailable):
                unavailable.load(name, version)
        finally:
            unavailable.close()


async def test_a_version_is_profiled_when_the_registry_makes_it_ready_before_any_prediction(
    registry: RunningService,
    stub: pb_grpc.RegistryServiceStub,
    onnx_models: dict[str, TrainedModel],
    kafka_bootstrap: str,
    tmp_path: Path,
) -> None:
    values = setting_values(kafka_bootstrap, tmp_path) | {
        "reference_source": "registry",
        "registry_address": registry.grpc_address,
        "registry_token": MONITOR,
    }
    parts = build(MonitorSettings.model_validate(values))
    async with service(parts).running():
        # The prefetching consumer starts from the latest event once it has joined its group: a version made
        # ready before that is profiled with its first predictions instead, so register until one is prefetched.
        # A prefetch may finish after its attempt's wait (its profile is built in a child process): any counts.
        registered: list[tuple[str, int]] = []

        def prefetched() -> list[tuple[str, int]]:
            return [(n, v) for n, v in registered if parts.store.active_profile(n, v) is not None]

        for _ in range(10):
            registered.append(await asyncio.to_thread(register, stub, onnx_models["iris"], PUBLISHER))
            try:
                await until(lambda: bool(prefetched()), "the prefetch", 10.0)
                break
            except TimeoutError:
                continue
        name, version = prefetched()[0]
        profile = parts.store.active_profile(name, version)
        assert profile is not None and sorted(profile.numeric) == sorted(onnx_models["iris"].feature_names)
        assert profile.source == f"registry:{onnx_models['iris'].reference_digest}"
        assert parts.store.statuses(name) == []  # profiled without a single prediction
