"""Experiment tracking on a real store (SQLite and PostgreSQL): runs, parameters, metric history, search with
MLflow's filter grammar, a run's files, and a model version registered from a run with the run as its lineage."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from modelyard.auth import PermissionDenied, Principal, Role
from modelyard.registry.bootstrap import RegistryParts
from modelyard.registry.domain.errors import AlreadyExists, InvalidArgument, NotFound
from modelyard.registry.domain.model import VersionStatus
from modelyard.registry.domain.tracking import GIT_COMMIT_TAG, DatasetInput, Metric, RunStatus
from modelyard.registry.handlers import RunLog, RunQuery
from modelyard.registry.testing import ALICE, chunked
from modelyard.testing.models import TrainedModel

pytestmark = pytest.mark.integration
VIEWER = Principal("vera", frozenset({Role.VIEWER}))


@pytest.fixture
def experiment(registry: RegistryParts) -> str:
    return registry.handlers.create_experiment(ALICE, f"exp-{uuid.uuid4().hex[:8]}", {"team": "fraud"})


def test_runs_params_metrics_and_history(registry: RegistryParts, experiment: str) -> None:
    h = registry.handlers
    run = h.create_run(ALICE, experiment, name="baseline", tags={GIT_COMMIT_TAG: "abc123"})
    assert (run.status, run.user, run.name) == (RunStatus.RUNNING, "alice", "baseline")
    metrics = [Metric("loss", 1.0 / (step + 1), 1000 + step, step) for step in range(5)]
    h.log(ALICE, run.run_id, RunLog(metrics=metrics, params={"depth": "3", "lr": "0.1"}, tags={"stage": "dev"}))
    h.log(ALICE, run.run_id, RunLog(metrics=[Metric("loss", 9.0, 999, 0)], params={"depth": "3"}))  # older: not latest
    got = h.get_run(VIEWER, run.run_id)
    assert got.params == {"depth": "3", "lr": "0.1"}
    assert got.metrics["loss"] == Metric("loss", 0.2, 1004, 4)
    assert got.tags["stage"] == "dev" and got.git_commit == "abc123"
    history = h.metric_history(VIEWER, run.run_id, "loss").items
    assert [m.step for m in history] == [0, 0, 1, 2, 3, 4] and len(history) == 6

    finished = h.update_run(ALICE, run.run_id, status="FINISHED", end_ms=5000)
    assert (finished.status, finished.end_ms) == (RunStatus.FINISHED, 5000)


def test_bad_batches_change_nothing(registry: RegistryParts, experiment: str) -> None:
    h = registry.handlers
    run = h.create_run(ALICE, experiment)
    h.log(ALICE, run.run_id, RunLog(params={"depth": "3"}))
    with pytest.raises(InvalidArgument, match="logged once"):
        h.log(ALICE, run.run_id, RunLog(metrics=[Metric("acc", 0.5, 1, 0)], params={"depth": "4"}))
    with pytest.raises(InvalidArgument, match="invalid metric name"):
        h.log(ALICE, run.run_id, RunLog(metrics=[Metric("../x", 0.5, 1, 0)]))
    with pytest.raises(InvalidArgument, match="at most 100 tags"):
        h.log(ALICE, run.run_id, RunLog(tags={f"t{i}": "v" for i in range(101)}))
    got = h.get_run(ALICE, run.run_id)
    assert got.params == {"depth": "3"} and got.metrics == {}
    with pytest.raises(NotFound):
        h.get_run(ALICE, uuid.uuid4().hex)
    with pytest.raises(PermissionDenied):
        h.log(VIEWER, run.run_id, RunLog(params={"x": "1"}))
    with pytest.raises(AlreadyExists):
        h.create_experiment(ALICE, h.get_experiment(ALICE, experiment).name)


def test_search_runs_with_filters_and_order(registry: RegistryParts, experiment: str) -> None:
    h = registry.handlers
    ids = []
    for i in range(6):
        run = h.create_run(ALICE, experiment, name=f"r{i}", start_ms=1000 + i)
        h.log(ALICE, run.run_id, RunLog([Metric("rmse", i / 10, 1, 0)], {"model": "tree" if i % 2 else "linear"}))
        ids.append(run.run_id)
    h.log_inputs(ALICE, ids[0], [DatasetInput("sha256:" + "a" * 64, "train.csv", "training")])

    def search(text: str, *order: str) -> list[str]:
        query = RunQuery((experiment,), text, order)
        return [r.name for r in h.search_runs(VIEWER, query).items]

    assert search("metrics.rmse < 0.25") == ["r2", "r1", "r0"]  # newest first by default
    assert search("metrics.rmse >= 0.2 and params.model = 'tree'", "metrics.rmse DESC") == ["r5", "r3"]
    assert search("params.model LIKE 'lin%'", "attributes.start_time") == ["r0", "r2", "r4"]
    assert search(f"attributes.run_id IN ('{ids[1]}', '{ids[4]}')") == ["r4", "r1"]
    assert search("datasets.context = 'training'") == ["r0"]
    assert search("tags.`mlflow.runName` = 'r3'") == ["r3"]
    page = h.search_runs(VIEWER, RunQuery((experiment,), order_by=("attributes.start_time",)), size=4)
    rest = h.search_runs(VIEWER, RunQuery((experiment,), order_by=("attributes.start_time",)), 4, page.next_page_token)
    assert [r.name for r in (*page.items, *rest.items)] == [f"r{i}" for i in range(6)] and not rest.next_page_token
    for bad in ("metrics.rmse < 'x'", "params.model > 1", "rmse < 1", "metrics.a < 1 OR metrics.b > 1"):
        with pytest.raises(InvalidArgument, match="invalid filter"):
            search(bad)


def test_register_from_run_records_lineage(
    registry: RegistryParts, experiment: str, model_name: str, onnx_models: dict[str, TrainedModel]
) -> None:
    h = registry.handlers
    model = onnx_models["breast-cancer"]
    run = h.create_run(ALICE, experiment, tags={GIT_COMMIT_TAG: "deadbeef"})
    h.log(ALICE, run.run_id, RunLog([Metric("auc", 0.97, 1, 0)], {"C": "1.0"}))
    h.log_inputs(ALICE, run.run_id, [DatasetInput("sha256:" + "b" * 64, "train", "training")])
    stored = asyncio.run(h.upload_file(ALICE, run.run_id, "model/model.onnx", chunked(model.onnx)))
    asyncio.run(h.upload_file(ALICE, run.run_id, "model/MLmodel", chunked(b"flavors: {}\n")))
    assert stored.digest == model.digest
    assert [(e.path, e.is_dir) for e in h.list_files(VIEWER, run.run_id)] == [("model", True)]
    assert [e.path for e in h.list_files(VIEWER, run.run_id, "model")] == ["model/MLmodel", "model/model.onnx"]
    _, chunks = h.open_file(VIEWER, run.run_id, "model/model.onnx")
    assert b"".join(chunks) == model.onnx

    h.create_model(ALICE, model_name)
    version = h.register_from_source(ALICE, model_name, f"runs:/{run.run_id}/model")
    assert version.status is VersionStatus.PENDING_REGISTRATION and version.digest == model.digest
    assert version.signature.inputs  # read from the ONNX by the same ingestion as an upload
    lineage = version.lineage
    assert (lineage.run_id, lineage.code_revision, lineage.source) == (
        run.run_id,
        "deadbeef",
        f"runs:/{run.run_id}/model",
    )
    assert (lineage.parameters, lineage.metrics, lineage.training_datasets) == (
        {"C": "1.0"},
        {"auc": 0.97},
        ("sha256:" + "b" * 64,),
    )
    h.check_version(model_name, version.version)
    assert h.get_version(ALICE, model_name, version.version).status is VersionStatus.READY

    with pytest.raises(InvalidArgument, match=r"no \.onnx file"):
        h.register_from_source(ALICE, model_name, f"runs:/{run.run_id}/model/MLmodel")
    with pytest.raises(InvalidArgument, match="unsupported model source"):
        h.register_from_source(ALICE, model_name, "s3://bucket/model")
    with pytest.raises(InvalidArgument, match="artifact path"):
        asyncio.run(h.upload_file(ALICE, run.run_id, "../escape", chunked(b"x")))
