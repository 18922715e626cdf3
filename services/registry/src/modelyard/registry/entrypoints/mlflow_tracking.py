"""MLflow's tracking REST API (`/api/2.0/mlflow/experiments|runs|metrics/...`) over the registry's tracking use
cases: the JSON MLflow's client sends and reads, converted, and nothing else.

No `from __future__ import annotations`: FastAPI reads the endpoints' annotations at run time.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from modelyard.auth import Principal
from modelyard.registry.domain.errors import InvalidArgument
from modelyard.registry.domain.tracking import (
    DatasetInput,
    Experiment,
    LifecycleStage,
    Metric,
    ModelOutput,
    Run,
)
from modelyard.registry.entrypoints.mlflow_common import (
    Json,
    JsonBody,
    key_values,
    mlflow_router,
    name_filter,
    number,
    pairs,
    query,
    strings,
    text,
)
from modelyard.registry.handlers import RegistryHandlers, RunLog, RunQuery
from modelyard.runtime.auth_http import current_principal

CONTEXT_TAG = "mlflow.data.context"
VIEW_TYPES = {"ACTIVE_ONLY": LifecycleStage.ACTIVE, "DELETED_ONLY": LifecycleStage.DELETED, "ALL": None}


def experiment_json(experiment: Experiment) -> Json:
    return {
        "experiment_id": experiment.experiment_id,
        "name": experiment.name,
        "artifact_location": experiment.artifact_location,
        "lifecycle_stage": experiment.lifecycle_stage.value,
        "creation_time": experiment.created_ms,
        "last_update_time": experiment.updated_ms,
        "tags": pairs(experiment.tags),
    }


def run_json(run: Run) -> Json:
    info: Json = {
        "run_id": run.run_id,
        "run_uuid": run.run_id,
        "run_name": run.name,
        "experiment_id": run.experiment_id,
        "user_id": run.user,
        "status": run.status.value,
        "start_time": run.start_ms,
        "artifact_uri": run.artifact_uri,
        "lifecycle_stage": run.lifecycle_stage.value,
    }
    if run.end_ms is not None:
        info["end_time"] = run.end_ms
    metrics = [metric_json(m) for m in sorted(run.metrics.values(), key=lambda m: m.key)]
    datasets = [
        {
            "tags": [{"key": CONTEXT_TAG, "value": i.context}] if i.context else [],
            "dataset": {
                "name": i.name,
                "digest": i.digest,
                "source_type": i.source_type,
                "source": i.source,
                **({"schema": i.schema} if i.schema else {}),
                **({"profile": i.profile} if i.profile else {}),
            },
        }
        for i in run.inputs
    ]
    data = {"metrics": metrics, "params": pairs(run.params), "tags": pairs(run.tags)}
    outputs = [{"model_id": o.model_id, "step": o.step} for o in run.outputs]
    return {"info": info, "data": data, "inputs": {"dataset_inputs": datasets}, "outputs": {"model_outputs": outputs}}


def metric_json(metric: Metric) -> Json:
    found = {"key": metric.key, "value": metric.value, "timestamp": metric.timestamp_ms, "step": metric.step}
    return {**found, "model_id": metric.model_id} if metric.model_id else found


def _metrics(body: Json) -> list[Metric]:
    items = body.get("metrics") or []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise InvalidArgument("parameter 'metrics' must be a list of metric objects")
    return [_metric(item) for item in items]


def _metric(item: Json) -> Metric:
    value = item.get("value")
    if isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity"):
        value = float(value)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise InvalidArgument(f"metric {str(item.get('key'))[:100]!r}: value must be a number")
    timestamp = number(item, "timestamp", required=True)
    assert timestamp is not None
    step = number(item, "step", default=0) or 0
    return Metric(text(item, "key", required=True), float(value), timestamp, step, text(item, "model_id"))


def _view(data: Json, name: str) -> LifecycleStage | None:
    view = text(data, name, default="ACTIVE_ONLY")
    if view not in VIEW_TYPES:
        raise InvalidArgument(f"invalid {name} {view[:40]!r}: ACTIVE_ONLY, DELETED_ONLY or ALL")
    return VIEW_TYPES[view]


def mlflow_tracking_router(handlers: RegistryHandlers, prefix: str) -> APIRouter:
    router = mlflow_router(prefix)
    Caller = Annotated[Principal, Depends(current_principal)]

    @router.post("/experiments/create", name="mlflow:createExperiment")
    def create_experiment(body: JsonBody, caller: Caller) -> Json:
        if text(body, "artifact_location"):
            raise InvalidArgument("artifact_location is not supported: run files live in the registry's store")
        name = text(body, "name", required=True)
        return {"experiment_id": handlers.create_experiment(caller, name, key_values(body, "tags"))}

    @router.get("/experiments/get", name="mlflow:getExperiment")
    def get_experiment(request: Request, caller: Caller) -> Json:
        experiment_id = text(query(request), "experiment_id", required=True)
        return {"experiment": experiment_json(handlers.get_experiment(caller, experiment_id=experiment_id))}

    @router.get("/experiments/get-by-name", name="mlflow:getExperimentByName")
    def get_experiment_by_name(request: Request, caller: Caller) -> Json:
        name = text(query(request), "experiment_name", required=True)
        return {"experiment": experiment_json(handlers.get_experiment(caller, name=name))}

    def search_experiments(data: Json, caller: Principal) -> Json:
        contains = name_filter(text(data, "filter"))
        page = handlers.list_experiments(
            caller, _view(data, "view_type"), number(data, "max_results", default=0) or 0, text(data, "page_token")
        )
        found = [experiment_json(e) for e in page.items if contains in e.name]
        return {"experiments": found, "next_page_token": page.next_page_token}

    @router.post("/experiments/search", name="mlflow:searchExperiments")
    def search_experiments_post(body: JsonBody, caller: Caller) -> Json:
        return search_experiments(body, caller)

    @router.get("/experiments/search", name="mlflow:searchExperiments")
    def search_experiments_get(request: Request, caller: Caller) -> Json:
        return search_experiments(query(request), caller)

    @router.post("/experiments/set-experiment-tag", name="mlflow:setExperimentTag")
    def set_experiment_tag(body: JsonBody, caller: Caller) -> Json:
        experiment_id, key = text(body, "experiment_id", required=True), text(body, "key", required=True)
        handlers.set_experiment_tag(caller, experiment_id, key, text(body, "value"))
        return {}

    @router.post("/runs/create", name="mlflow:createRun")
    def create_run(body: JsonBody, caller: Caller) -> Json:
        run = handlers.create_run(
            caller,
            text(body, "experiment_id", default="0"),
            name=text(body, "run_name"),
            start_ms=number(body, "start_time", default=0) or 0,
            tags=key_values(body, "tags"),
        )
        return {"run": run_json(run)}

    @router.post("/runs/update", name="mlflow:updateRun")
    def update_run(body: JsonBody, caller: Caller) -> Json:
        run_id = text(body, "run_id") or text(body, "run_uuid", required=True)
        run = handlers.update_run(
            caller, run_id, text(body, "status"), number(body, "end_time"), text(body, "run_name")
        )
        return {"run_info": run_json(run)["info"]}

    @router.post("/runs/delete", name="mlflow:deleteRun")
    def delete_run(body: JsonBody, caller: Caller) -> Json:
        handlers.set_run_lifecycle(caller, text(body, "run_id", required=True), LifecycleStage.DELETED)
        return {}

    @router.post("/runs/restore", name="mlflow:restoreRun")
    def restore_run(body: JsonBody, caller: Caller) -> Json:
        handlers.set_run_lifecycle(caller, text(body, "run_id", required=True), LifecycleStage.ACTIVE)
        return {}

    @router.get("/runs/get", name="mlflow:getRun")
    def get_run(request: Request, caller: Caller) -> Json:
        data = query(request)
        run_id = text(data, "run_id") or text(data, "run_uuid", required=True)
        return {"run": run_json(handlers.get_run(caller, run_id))}

    @router.post("/runs/log-batch", name="mlflow:logBatch")
    def log_batch(body: JsonBody, caller: Caller) -> Json:
        batch = RunLog(_metrics(body), key_values(body, "params"), key_values(body, "tags"))
        handlers.log(caller, text(body, "run_id", required=True), batch)
        return {}

    @router.post("/runs/log-metric", name="mlflow:logMetric")
    def log_metric(body: JsonBody, caller: Caller) -> Json:
        run_id = text(body, "run_id") or text(body, "run_uuid", required=True)
        handlers.log(caller, run_id, RunLog(metrics=[_metric(body)]))
        return {}

    @router.post("/runs/log-parameter", name="mlflow:logParam")
    def log_param(body: JsonBody, caller: Caller) -> Json:
        run_id = text(body, "run_id") or text(body, "run_uuid", required=True)
        handlers.log(caller, run_id, RunLog(params={text(body, "key", required=True): text(body, "value")}))
        return {}

    @router.post("/runs/set-tag", name="mlflow:setTag")
    def set_tag(body: JsonBody, caller: Caller) -> Json:
        run_id = text(body, "run_id") or text(body, "run_uuid", required=True)
        handlers.log(caller, run_id, RunLog(tags={text(body, "key", required=True): text(body, "value")}))
        return {}

    @router.post("/runs/delete-tag", name="mlflow:deleteTag")
    def delete_tag(body: JsonBody, caller: Caller) -> Json:
        handlers.delete_run_tag(caller, text(body, "run_id", required=True), text(body, "key", required=True))
        return {}

    @router.post("/runs/log-inputs", name="mlflow:logInputs")
    def log_inputs(body: JsonBody, caller: Caller) -> Json:
        items = body.get("datasets") or []
        if not isinstance(items, list) or not all(
            isinstance(i, dict) and isinstance(i.get("dataset"), dict) for i in items
        ):
            raise InvalidArgument("parameter 'datasets' must be a list of {dataset, tags} objects")
        inputs = [_dataset_input(item) for item in items]
        handlers.log_inputs(caller, text(body, "run_id", required=True), inputs)
        return {}

    @router.post("/runs/search", name="mlflow:searchRuns")
    def search_runs(body: JsonBody, caller: Caller) -> Json:
        run_query = RunQuery(
            tuple(strings(body, "experiment_ids")),
            text(body, "filter"),
            tuple(strings(body, "order_by")),
            _view(body, "run_view_type"),
        )
        page = handlers.search_runs(
            caller, run_query, number(body, "max_results", default=0) or 0, text(body, "page_token")
        )
        return {"runs": [run_json(r) for r in page.items], "next_page_token": page.next_page_token}

    @router.post("/runs/outputs", name="mlflow:logOutputs")
    def log_outputs(body: JsonBody, caller: Caller) -> Json:
        items = body.get("models") or []
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise InvalidArgument("parameter 'models' must be a list of {model_id, step} objects")
        outputs = [ModelOutput(text(i, "model_id", required=True), number(i, "step", default=0) or 0) for i in items]
        handlers.log_outputs(caller, text(body, "run_id", required=True), outputs)
        return {}

    @router.get("/metrics/get-history", name="mlflow:getMetricHistory")
    def metric_history(request: Request, caller: Caller) -> Json:
        data = query(request)
        run_id = text(data, "run_id") or text(data, "run_uuid", required=True)
        page = handlers.metric_history(
            caller,
            run_id,
            text(data, "metric_key", required=True),
            number(data, "max_results", default=0) or 0,
            text(data, "page_token"),
        )
        return {"metrics": [metric_json(m) for m in page.items], "next_page_token": page.next_page_token}

    return router


def _dataset_input(item: dict[str, Any]) -> DatasetInput:
    dataset = item["dataset"]
    context = key_values(item, "tags").get(CONTEXT_TAG, "")
    return DatasetInput(
        digest=text(dataset, "digest", required=True),
        name=text(dataset, "name", required=True),
        context=context,
        source_type=text(dataset, "source_type"),
        source=text(dataset, "source"),
        schema=text(dataset, "schema"),
        profile=text(dataset, "profile"),
    )
