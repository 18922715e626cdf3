"""Background samples for explanations from the registry: a real registry on loopback, a real skl2onnx model
registered with its reference CSV, and serving's `RegistryReferences` behind the per-version cache."""

from __future__ import annotations

import io
from collections.abc import Iterator

import grpc
import numpy as np
import pytest

from modelyard.auth import AuthSettings, Role, TokenGrant
from modelyard.contracts.registry.v1 import registry_service_pb2_grpc as pb_grpc
from modelyard.registry.testing import RunningService, register, registry_settings
from modelyard.serving.adapters.references import CachedReferences, RegistryReferences
from modelyard.serving.domain.errors import Unavailable
from modelyard.serving.domain.explanation import Feature, NoReference
from modelyard.serving.domain.model import VersionRef
from modelyard.testing.models import TrainedModel

pytestmark = pytest.mark.integration

PUBLISHER, SERVING = "publisher-token-0123456789abcdef", "serving-token-0123456789abcdef"
AUTH = AuthSettings(
    tokens={
        PUBLISHER: TokenGrant(principal="alice", roles=frozenset({Role.PUBLISHER})),
        SERVING: TokenGrant(principal="serving", roles=frozenset({Role.SERVICE})),
    },
    allow_anonymous=False,
)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[RunningService]:
    settings = registry_settings(
        tmp_path_factory.mktemp("registry"), auth=AUTH, kafka_bootstrap=kafka_bootstrap, check_interval_s=0.05
    )
    with RunningService(settings) as running:
        yield running


async def test_the_background_is_a_sample_of_the_registered_reference_named_by_feature(
    registry: RunningService, onnx_models: dict[str, TrainedModel]
) -> None:
    cancer, diabetes = onnx_models["breast-cancer"], onnx_models["diabetes"]
    with grpc.insecure_channel(registry.grpc_address) as channel:
        stub = pb_grpc.RegistryServiceStub(channel)  # type: ignore[no-untyped-call]
        name, version = register(stub, cancer, PUBLISHER)
        bare, bare_version = register(stub, diabetes, PUBLISHER, with_reference=False)
    references = CachedReferences(RegistryReferences(registry.grpc_address, SERVING), sample_rows=20)
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
    gone = CachedReferences(RegistryReferences("127.0.0.1:1", timeout_s=5), sample_rows=20)
    with pytest.raises(Unavailable, match="UNAVAILABLE"):
        await gone.fetch(ref)
    await gone.close()

    # Registered feature names, not locations; the label column is no feature; 20 of the CSV's rows, unchanged.
    assert [reference.name(f) for f in features] == list(cancer.feature_names)
    assert reference.source == f"registry:{cancer.reference_digest}"
    registered = np.loadtxt(io.BytesIO(cancer.reference_csv), delimiter=",", skiprows=1)[:, :-1]
    sample = np.column_stack(background)
    assert sample.shape == (20, 30)
    assert len({tuple(r) for r in sample}) == 20
    assert {tuple(r) for r in sample} <= {tuple(r) for r in registered}
