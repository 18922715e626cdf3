"""What the MLflow-compatible routes share: MLflow's error shape (`{"error_code": ..., "message": ...}`) for every
error, request fields read the way MLflow's client sends them (JSON bodies; query strings for GET), and the answer
for MLflow calls Modelyard does not implement.

No `from __future__ import annotations`: FastAPI reads the endpoints' annotations at run time.
"""

import re
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from modelyard.auth import Unauthenticated
from modelyard.errors import ErrorKind
from modelyard.registry.domain.errors import InvalidArgument
from modelyard.registry.handlers import FileEntry
from modelyard.runtime.auth_http import CHALLENGE
from modelyard.runtime.errors import client_message, kind_of

Json = dict[str, Any]
JsonBody = Annotated[Json, Body(default_factory=dict)]
PREFIX = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts"
UNSUPPORTED = "mlflow:unsupported"
# MLflow's error codes and the HTTP statuses its server answers them with. Client errors are never 5xx: MLflow's
# client retries those.
MLFLOW_ERRORS: dict[ErrorKind, tuple[str, int]] = {
    ErrorKind.INVALID_ARGUMENT: ("INVALID_PARAMETER_VALUE", 400),
    ErrorKind.NOT_FOUND: ("RESOURCE_DOES_NOT_EXIST", 404),
    ErrorKind.ALREADY_EXISTS: ("RESOURCE_ALREADY_EXISTS", 400),
    ErrorKind.PERMISSION_DENIED: ("PERMISSION_DENIED", 403),
    ErrorKind.UNAUTHENTICATED: ("UNAUTHENTICATED", 401),
    ErrorKind.FAILED_PRECONDITION: ("INVALID_STATE", 400),
    ErrorKind.RESOURCE_EXHAUSTED: ("RESOURCE_EXHAUSTED", 413),
    ErrorKind.DATA_LOSS: ("DATA_LOSS", 500),
    ErrorKind.UNAVAILABLE: ("TEMPORARILY_UNAVAILABLE", 503),
}


def mlflow_error(code: str, status: int, message: str) -> JSONResponse:
    headers = CHALLENGE if status == 401 else None
    return JSONResponse({"error_code": code, "message": client_message(message)}, status_code=status, headers=headers)


class MlflowRoute(APIRoute):
    """Every error of an MLflow route, the edge's refusals included, in MLflow's shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def mapped(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                where = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors()[:3])
                return mlflow_error("INVALID_PARAMETER_VALUE", 400, f"malformed request: {where}")
            except (
                HTTPException
            ) as exc:  # FastAPI's own refusals (starlette's class), e.g. a body that is not UTF-8 JSON
                code = "INVALID_PARAMETER_VALUE" if exc.status_code < 500 else "INTERNAL_ERROR"
                return mlflow_error(
                    code, exc.status_code, str(exc.detail) if exc.status_code < 500 else "internal error"
                )
            except Exception as exc:
                code, status = MLFLOW_ERRORS.get(kind_of(exc), ("INTERNAL_ERROR", 500))
                if isinstance(exc, Unauthenticated):
                    code, status = "UNAUTHENTICATED", 401
                return mlflow_error(code, status, str(exc) if status != 500 else "internal error")

        return mapped


def mlflow_router(prefix: str = "") -> APIRouter:
    return APIRouter(prefix=prefix, tags=["mlflow"], route_class=MlflowRoute)


def text(data: Mapping[str, Any], name: str, *, required: bool = False, default: str = "") -> str:
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise InvalidArgument(f"missing value for parameter '{name}'")
        return default
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise InvalidArgument(f"parameter '{name}' must be a string")
    return str(value)


def number(data: Mapping[str, Any], name: str, *, default: int | None = None, required: bool = False) -> int | None:
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise InvalidArgument(f"missing value for parameter '{name}'")
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidArgument(f"parameter '{name}' must be an integer") from None


def strings(data: Mapping[str, Any], name: str) -> list[str]:
    value = data.get(name) or []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"parameter '{name}' must be a list of strings")
    return value


def key_values(data: Mapping[str, Any], name: str) -> dict[str, str]:
    """MLflow's `[{"key": ..., "value": ...}]` lists (tags, params) as a dict."""
    items = data.get(name) or []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise InvalidArgument(f"parameter '{name}' must be a list of {{key, value}} objects")
    return {text(i, "key", required=True): text(i, "value") for i in items}


def pairs(mapping: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in sorted(mapping.items())]


def file_infos(entries: Sequence[FileEntry], path: str) -> list[Json]:
    """MLflow's FileInfo list of a listing under `path`: paths relative to it, sizes of files."""
    base = f"{path}/" if path else ""
    return [
        {"path": e.path[len(base) :], "is_dir": e.is_dir, **({} if e.is_dir else {"file_size": e.size_bytes})}
        for e in entries
    ]


def query(request: Request) -> Json:
    """The query string of a GET as MLflow's client sends it: repeated keys are lists."""
    params = request.query_params
    return {k: (params.getlist(k) if len(params.getlist(k)) > 1 else params[k]) for k in params}


def name_filter(filter_text: str) -> str:
    """The substring (or exact name) that `name = 'x'`, `name LIKE '%x%'` or `name ILIKE ...` asks for."""
    if not filter_text.strip():
        return ""
    match = re.fullmatch(r"\s*name\s*(=|I?LIKE)\s*(['\"])(.*?)\2\s*", filter_text, flags=re.IGNORECASE)
    if match is None:
        raise InvalidArgument(
            f"unsupported filter {filter_text[:100]!r}: Modelyard searches by name = '...' or name LIKE '%...%'"
        )
    return match[3].strip("%")


def unsupported_router() -> APIRouter:
    """Included last: every other MLflow path answers ENDPOINT_NOT_FOUND (404, as MLflow's own server answers a call
    it lacks), naming the call: never an HTML 404 page, never a 5xx (it is the caller's call, not a server fault)."""
    router = mlflow_router()

    async def unsupported(request: Request) -> JSONResponse:
        # The path is the caller's own, not a server path: named as sent (cut short), not scrubbed.
        call = f"{request.method} {request.url.path}"[:200]
        message = f"Modelyard does not support the MLflow call {call}: see docs/mlflow.md"
        return JSONResponse({"error_code": "ENDPOINT_NOT_FOUND", "message": message}, status_code=404)

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    for root in (PREFIX, ARTIFACTS, "/api/3.0/mlflow", "/ajax-api/2.0/mlflow"):
        router.add_api_route(
            f"{root}/{{rest:path}}",
            unsupported,
            methods=methods,
            name=UNSUPPORTED,
            summary="Any other MLflow call: ENDPOINT_NOT_FOUND",
        )
    return router
