"""Background samples for explanations from the registry: a real registry on loopback, a real skl2onnx model
registered with its reference CSV, and serving's `RegistryReferences` behind the per-version cache."""

from __future__ import annotations

import io
from collections.abc import Iterator

import grpc
import numpy as np
import pytest

from modelyard.contracts.registry.v1 import registry_service_pb2_grpc as pb_grpc
from modelyard.registry.testing import PUBLISHER_TOKEN, READER_TOKEN, RunningService, reading_registry, register
from modelyard.serving.adapters.artifacts import RegistryArtifacts
from modelyard.serving.adapters.references import CachedReferences, RegistryReferences
from modelyard.serving.domain.errors import Unavailable
from modelyard.serving.domain.explanation import Feature, NoReference
from modelyard.serving.domain.model import VersionRef
from modelyard.testing.models import TrainedModel

pytestmark = pytest.mark.integration

PUBLISHER, SERVING = PUBLISHER_TOKEN, READER_TOKEN


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[RunningService]:
    with reading_registry(tmp_path_factory.mktemp("registry"), kafka_bootstrap) as running:
        yield running


async def test_the_background_is_a_sample_of_the_registered_reference_named_by_feature(
    registry: RunningService, onnx_models: dict[str, TrainedModel]
) -> None:
    cancer, diabetes = onnx_models["breast-cancer"], onnx_models["diabetes"]
    with grpc.insecure_channel(registry.grpc_address) as channel:
        stub = pb_grpc.RegistryServiceStub(channel)  # type: ignore[no-untyped-call]
        name, version = register(stub, cancer, PUBLISHER)
        bare, bare_version = register(stub, diabetes, PUBLISHER, with_reference=False)
    artifacts = RegistryArtifacts(registry.grpc_address, SERVING)
    references = CachedReferences(RegistryReferences(artifacts), sample_rows=20)
    try:
        ref = VersionRef(name, version, cancer.digest)
        reference = await references.fetch(ref)
        assert await references.fetch(ref) is reference  # cached per version
        features = [Feature("X", j, 30) for j in range(30)]
        background = reference.background(features, str(ref))
        with pytest.raises(NoReference, match="has no reference dataset in the registry"):
            await references.fetch(VersionRef(bare, bare_version, diabetes.digest))
        with pytest.raises(NoReference, match="NOT_FOUND"):
            await references.fetch(VersionRef(name, 99, cancer.digest))
    finally:
        await references.close()
        await artifacts.close()
    away = RegistryArtifacts("127.0.0.1:1", timeout_s=5)
    with pytest.raises(Unavailable, match="UNAVAILABLE"):
        await CachedReferences(RegistryReferences(away), sample_rows=20).fetch(ref)
    await away.close()

    # Registered feature names, not locations; the label column is no feature; 20 of the CSV's rows, unchanged.
    assert [reference.name(f) for f in features] == list(cancer.feature_names)
    assert reference.source == f"registry:{cancer.reference_digest}"
    registered = np.loadtxt(io.BytesIO(cancer.reference_csv), delimiter=",", skiprows=1)[:, :-1]
    sample = np.column_stack(background)
    assert sample.shape == (20, 30)
    assert len({tuple(r) for r in sample}) == 20
    assert {tuple(r) for r in sample} <= {tuple(r) for r in registered}
