"""MLflow 3's logged models on a real store (SQLite and PostgreSQL): created PENDING, files uploaded to them,
finalized, found by MLflow's filter grammar, and registered (only when READY) through the same ingestion as an
upload, with the model's and its run's lineage."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from modelyard.auth import PermissionDenied, Principal, Role
from modelyard.registry.bootstrap import RegistryParts
from modelyard.registry.domain.errors import FailedPrecondition, InvalidArgument, NotFound
from modelyard.registry.domain.logged_models import LoggedModelStatus
from modelyard.registry.domain.model import VersionStatus
from modelyard.registry.domain.tracking import GIT_COMMIT_TAG, Metric, ModelOutput
from modelyard.registry.handlers import NewLoggedModel, RunLog, logged_model_order
from modelyard.registry.testing import ALICE, chunked
from modelyard.testing.models import TrainedModel

pytestmark = pytest.mark.integration
VIEWER = Principal("vera", frozenset({Role.VIEWER}))


@pytest.fixture
def experiment(registry: RegistryParts) -> str:
    return registry.handlers.create_experiment(ALICE, f"lm-{uuid.uuid4().hex[:8]}")


def test_log_finalize_and_register_a_logged_model(
    registry: RegistryParts, experiment: str, model_name: str, onnx_models: dict[str, TrainedModel]
) -> None:
    h, model = registry.handlers, onnx_models["breast-cancer"]
    run = h.create_run(ALICE, experiment, tags={GIT_COMMIT_TAG: "cafe01"})
    h.log(ALICE, run.run_id, RunLog([Metric("accuracy", 0.91, 10, 0)], {"C": "1.0"}))
    logged = h.create_logged_model(
        ALICE, NewLoggedModel(experiment, "model", run.run_id, params={"C": "1.0", "solver": "lbfgs"})
    )
    assert logged.status is LoggedModelStatus.PENDING and logged.model_id.startswith("m-")
    assert logged.artifact_uri == f"mlflow-artifacts:/{experiment}/models/{logged.model_id}/artifacts"
    h.log_outputs(ALICE, run.run_id, [ModelOutput(logged.model_id, 0)])
    # What the client does next: the run's values at the step, copied to the model (not appended twice to the run).
    h.log(ALICE, run.run_id, RunLog([Metric("accuracy", 0.91, 10, 0, logged.model_id)]))
    h.log(ALICE, run.run_id, RunLog([Metric("accuracy", 0.97, 11, 1, logged.model_id)]))
    assert [m.value for m in h.metric_history(VIEWER, run.run_id, "accuracy").items] == [0.91, 0.97]
    assert h.get_run(VIEWER, run.run_id).outputs == (ModelOutput(logged.model_id, 0),)
    asyncio.run(h.upload_file(ALICE, logged.model_id, "model.onnx", chunked(model.onnx)))
    asyncio.run(h.upload_file(ALICE, logged.model_id, "MLmodel", chunked(b"flavors: {onnx: {}}\n")))
    assert [e.path for e in h.list_files(VIEWER, logged.model_id)] == ["MLmodel", "model.onnx"]
    assert h.list_files(VIEWER, run.run_id) == []  # the run's own files are apart

    h.create_model(ALICE, model_name)
    with pytest.raises(FailedPrecondition, match="LOGGED_MODEL_READY"):
        h.register_from_source(ALICE, model_name, f"models:/{logged.model_id}")
    assert h.finalize_logged_model(ALICE, logged.model_id, "LOGGED_MODEL_READY").status is LoggedModelStatus.READY
    with pytest.raises(InvalidArgument, match="not the run"):
        h.register_from_source(ALICE, model_name, f"models:/{logged.model_id}", run_id=uuid.uuid4().hex)
    version = h.register_from_source(
        ALICE, model_name, f"models:/{logged.model_id}", run_id=run.run_id, model_id=logged.model_id
    )
    assert version.status is VersionStatus.PENDING_REGISTRATION and version.digest == model.digest
    assert version.signature.inputs  # read from the ONNX by the same ingestion as an upload
    lineage = version.lineage
    assert (lineage.run_id, lineage.source, lineage.code_revision) == (
        run.run_id,
        f"models:/{logged.model_id}",
        "cafe01",
    )
    assert lineage.parameters == {"C": "1.0", "solver": "lbfgs"} and lineage.metrics == {"accuracy": 0.97}
    h.check_version(model_name, version.version)
    assert h.get_version(ALICE, model_name, version.version).status is VersionStatus.READY


def test_search_tags_params_and_refusals(registry: RegistryParts, experiment: str) -> None:
    h = registry.handlers
    run = h.create_run(ALICE, experiment)
    first = h.create_logged_model(ALICE, NewLoggedModel(experiment, "model", run.run_id, model_type="onnx"))
    second = h.create_logged_model(ALICE, NewLoggedModel(experiment, "other", tags={"team": "fraud"}))
    h.log_logged_model_params(ALICE, second.model_id, {"depth": "3"})
    h.set_logged_model_tags(ALICE, first.model_id, {"stage": "dev"})
    h.delete_logged_model_tag(ALICE, first.model_id, "stage")
    h.finalize_logged_model(ALICE, second.model_id, "LOGGED_MODEL_READY")

    def names(filter_text: str = "", order: tuple[tuple[str, bool], ...] = ()) -> list[str]:
        page = h.search_logged_models(VIEWER, [experiment], filter_text, logged_model_order(order))
        return [m.name for m in page.items]

    assert names("name = 'model'") == ["model"]
    assert names(f"source_run_id = '{run.run_id}' AND model_type = 'onnx'") == ["model"]
    assert names("params.depth = '3' AND tags.team LIKE 'fr%'") == ["other"]
    assert names("status = 'LOGGED_MODEL_READY'") == ["other"]
    assert names(order=(("name", True),)) == ["model", "other"]
    assert names(order=(("name", False),)) == ["other", "model"]
    assert h.get_logged_model(VIEWER, first.model_id).tags == {}

    with pytest.raises(InvalidArgument, match="unknown attribute"):
        names("start_time > 3")
    with pytest.raises(InvalidArgument, match="invalid logged model id"):
        h.get_logged_model(VIEWER, "m-../../etc")
    with pytest.raises(NotFound):
        h.get_logged_model(VIEWER, "m-" + "0" * 32)
    with pytest.raises(NotFound, match="logged model"):
        h.log(ALICE, run.run_id, RunLog([Metric("x", 1.0, 1, 0, "m-" + "1" * 32)]))
    with pytest.raises(InvalidArgument, match="not in experiment"):
        h.create_logged_model(
            ALICE, NewLoggedModel(h.create_experiment(ALICE, f"x-{uuid.uuid4().hex}"), "m", run.run_id)
        )
    with pytest.raises(InvalidArgument, match="finalized as"):
        h.finalize_logged_model(ALICE, first.model_id, "LOGGED_MODEL_PENDING")
    with pytest.raises(PermissionDenied):
        h.create_logged_model(VIEWER, NewLoggedModel(experiment))
    h.delete_logged_model(ALICE, first.model_id)
    assert names() == ["other"]
    with pytest.raises(NotFound):
        h.get_logged_model(VIEWER, first.model_id)
    assert h.get_logged_model(VIEWER, first.model_id, allow_deleted=True).name == "model"
