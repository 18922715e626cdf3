"""gRPC servicer and REST router over `GovernanceApi`: take the caller the auth edge admitted, run the blocking
call in a worker thread, map errors once (`entrypoints.errors`)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

import grpc
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from google.protobuf.descriptor import Descriptor
from google.protobuf.json_format import MessageToDict, ParseDict, ParseError
from google.protobuf.message import Message

from modelyard.auth import Principal, Unauthenticated
from modelyard.contracts.governance.v1 import governance_service_pb2 as pb
from modelyard.contracts.governance.v1 import governance_service_pb2_grpc as pb_grpc
from modelyard.governance.entrypoints.api import GovernanceApi
from modelyard.governance.entrypoints.errors import ERRORS
from modelyard.governance.entrypoints.schema import message_schema
from modelyard.inputs import BadInput
from modelyard.runtime import GrpcApi, auth_grpc, auth_http

SERVICE = pb.DESCRIPTOR.services_by_name["GovernanceService"]
Call = Callable[[Principal, Any], Message]

# REST routes: (HTTP method, path, RPC); a route is named after its RPC (its operation in the access table).
# Path parameters fill the request message's fields of the same name;
# for GET the query string does, for POST the JSON body.
ROUTES = [
    ("POST", "/v1/promotions", "RequestPromotion"),
    ("POST", "/v1/promotions/{request_id}:approve", "Approve"),
    ("POST", "/v1/promotions/{request_id}:reject", "Reject"),
    ("GET", "/v1/promotions", "ListPending"),
    ("GET", "/v1/promotions/{request_id}", "GetDecision"),
    ("GET", "/v1/models/{model_name}/plan", "GetDeploymentPlan"),
    ("GET", "/v1/plans", "ListDeploymentPlans"),
    ("GET", "/v1/models/{model_name}/served-at", "GetServedAt"),
    ("GET", "/v1/models/{model_name}/versions/{version}/card", "GetModelCard"),
    ("GET", "/v1/audit/entries", "ListAuditEntries"),
    ("POST", "/v1/audit:verify", "VerifyAudit"),
    ("GET", "/v1/audit/export", "ExportAudit"),
    ("GET", "/v1/predictions/{request_id}/trace", "TracePrediction"),
]


def governance_grpc_api(api: GovernanceApi) -> GrpcApi:
    servicer = pb_grpc.GovernanceServiceServicer()
    for method in SERVICE.methods:
        # One coroutine per RPC, bound by name: the servicer is a pure pass-through to the transport-free API.
        setattr(servicer, method.name, _grpc_method(getattr(api, method.name)))
    add: Callable[[object, grpc.aio.Server], None] = pb_grpc.add_GovernanceServiceServicer_to_server
    return GrpcApi(SERVICE.full_name, lambda server: add(servicer, server))


def _grpc_method(call: Call) -> Callable[[Message, Any], Any]:
    async def handle(request: Message, context: Any) -> Message:
        try:
            return await asyncio.to_thread(call, auth_grpc.current_principal(), request)
        except ERRORS.known as exc:
            await ERRORS.abort(context, exc)

    return handle


def governance_router(api: GovernanceApi) -> APIRouter:
    router = APIRouter(tags=["governance"])
    for http_method, path, rpc in ROUTES:
        method = SERVICE.methods_by_name[rpc]
        router.add_api_route(
            path,
            _rest_endpoint(getattr(api, rpc), method.input_type._concrete_class),
            methods=[http_method],
            name=rpc,
            openapi_extra=_body_document(method.input_type, path) if http_method == "POST" else None,
        )
    return router


def _body_document(request: Descriptor, path: str) -> dict[str, Any]:
    """The OpenAPI `requestBody` of a POST route: the request message's fields that the path does not give. The
    endpoint parses the body itself (one parser for every route, protobuf's), so this documents, not validates."""
    schema = message_schema(request, exclude=re.findall(r"\{(\w+)\}", path))
    return {"requestBody": {"required": False, "content": {"application/json": {"schema": schema}}}}


def _rest_endpoint(call: Call, request_class: type[Message]) -> Any:
    async def endpoint(request: Request) -> JSONResponse:
        try:
            principal = auth_http.current_principal(request)
            message = await _request_message(request, request_class)
            response = await asyncio.to_thread(call, principal, message)
        except ERRORS.known as exc:
            headers = auth_http.CHALLENGE if isinstance(exc, Unauthenticated) else None
            return JSONResponse(ERRORS.body(exc), status_code=ERRORS.http(exc), headers=headers)
        return JSONResponse(MessageToDict(response, preserving_proto_field_name=True))

    return endpoint


async def _request_message(request: Request, request_class: type[Message]) -> Message:
    """The request message of a REST call: query string, then the JSON object body (POST), then path parameters."""
    fields: dict[str, Any] = dict(request.query_params)
    body = await request.body() if request.method == "POST" else b""
    try:
        if body:
            document = json.loads(body)
            if not isinstance(document, dict):
                raise BadInput("the request body must be a JSON object")
            fields.update(document)
        fields.update(request.path_params)
        return ParseDict(fields, request_class())
    except (ParseError, ValueError, TypeError, RecursionError) as exc:
        raise BadInput(f"not a valid {request_class.DESCRIPTOR.name}: {exc}") from None
