"""Governance's POST routes describe their JSON bodies in the OpenAPI document, from the request messages' descriptors
(so schemathesis and API clients see the fields), while the endpoints keep parsing them with protobuf's parser."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI

from modelyard.governance.entrypoints.api import GovernanceApi
from modelyard.governance.entrypoints.transports import governance_router

pytestmark = pytest.mark.unit


def body_schemas() -> dict[str, dict[str, Any]]:
    app = FastAPI()
    app.include_router(governance_router(GovernanceApi(None)))  # type: ignore[arg-type]  # routes only, no calls
    return {
        path: operation["requestBody"]["content"]["application/json"]["schema"]
        for path, operations in app.openapi()["paths"].items()
        for method, operation in operations.items()
        if method == "post"
    }


def test_every_post_body_is_described_by_its_request_message_without_the_path_parameters() -> None:
    schemas = body_schemas()
    assert set(schemas) == {
        "/v1/promotions",
        "/v1/promotions/{request_id}:approve",
        "/v1/promotions/{request_id}:reject",
        "/v1/audit:verify",
    }
    assert schemas["/v1/promotions"]["properties"] == {
        "model_name": {"type": "string"},
        "version": {"type": "integer", "format": "int64"},
        "target_alias": {"type": "string"},
    }
    assert schemas["/v1/promotions/{request_id}:approve"]["properties"] == {}  # the id is in the path
    assert schemas["/v1/promotions/{request_id}:reject"]["properties"] == {"reason": {"type": "string"}}
    checkpoint = schemas["/v1/audit:verify"]["properties"]["published"]["items"]
    assert checkpoint["properties"]["signed_at"] == {"type": "string", "format": "date-time"}
    assert all(schema["additionalProperties"] is False for schema in schemas.values())
