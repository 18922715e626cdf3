"""Experiment tracking in Modelyard's own REST API (what `modelyard runs` reads): runs searched with MLflow's
filter grammar, one run in full, a metric's history. Writes go through MLflow's API, which data scientists'
training code already calls.

No `from __future__ import annotations`: FastAPI reads the endpoints' annotations at run time.
"""

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from modelyard.auth import Principal
from modelyard.registry.domain.tracking import Run
from modelyard.registry.entrypoints.rest import ErrorMappingRoute
from modelyard.registry.handlers import RegistryHandlers, RunQuery
from modelyard.runtime.auth_http import current_principal

Json = dict[str, Any]


def run_dict(run: Run) -> Json:
    return {**asdict(run), "artifact_uri": run.artifact_uri, "source": run.source, "git_commit": run.git_commit}


def tracking_router(handlers: RegistryHandlers) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["tracking"], route_class=ErrorMappingRoute)
    Caller = Annotated[Principal, Depends(current_principal)]

    @router.get("/runs", name="ListRuns", summary="Search an experiment's runs (MLflow's filter grammar)")
    def list_runs(
        caller: Caller,
        experiment: Annotated[str, Query(description="experiment name or id")] = "0",
        filter: str = "",
        order_by: Annotated[list[str] | None, Query(description="e.g. 'metrics.rmse ASC'; repeat")] = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> Json:
        found = handlers.get_experiment(
            caller,
            experiment_id=experiment if experiment.isdigit() else "",
            name="" if experiment.isdigit() else experiment,
        )
        page = handlers.search_runs(
            caller, RunQuery((found.experiment_id,), filter, tuple(order_by or ())), page_size, page_token
        )
        return {"runs": [run_dict(r) for r in page.items], "next_page_token": page.next_page_token}

    @router.get("/runs/{run_id}", name="GetRun", summary="A run: parameters, latest metrics, tags, inputs, files")
    def get_run(run_id: str, caller: Caller) -> Json:
        run = handlers.get_run(caller, run_id)
        return {**run_dict(run), "files": [asdict(f) for f in handlers.files_of(caller, run.run_id)]}

    @router.get("/runs/{run_id}/metrics/{key}", name="GetMetricHistory", summary="Every logged value of a metric")
    def metric_history(run_id: str, key: str, caller: Caller, page_size: int = 0, page_token: str = "") -> Json:
        page = handlers.metric_history(caller, run_id, key, page_size, page_token)
        return {"metrics": [asdict(m) for m in page.items], "next_page_token": page.next_page_token}

    return router
