"""HTTP side of the auth edge: an app-wide FastAPI dependency that enforces a service's access table.

A route's operation is its name (the REST route of a gRPC method carries the method's name). The admitted
principal is kept on `request.state`; routes that need it declare `Depends(current_principal)`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.responses import JSONResponse

from modelyard.access import AccessEdge
from modelyard.auth import AuthError, Principal, Unauthenticated
from modelyard.runtime.errors import SHARED

# Sent with every 401, as RFC 6750 asks.
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="modelyard"'}


def edge_dependency(edge: AccessEdge) -> Callable[[Request], Awaitable[None]]:
    """The dependency every route of the app runs first: raises an AuthError unless the table admits the caller."""

    async def admit(request: Request) -> None:
        route = request.scope.get("route")
        principal = await edge.admit(getattr(route, "name", None), request.headers.get("authorization"))
        if principal is not None:
            request.state.principal = principal

    return admit


def refusal(request: Request, error: Exception) -> JSONResponse:
    """The app's answer to an AuthError: the same body and codes as the services' own errors."""
    assert isinstance(error, AuthError)
    headers = CHALLENGE if isinstance(error, Unauthenticated) else None
    return JSONResponse(SHARED.body(error), status_code=SHARED.http(error), headers=headers)


def current_principal(request: Request) -> Principal:
    """The caller the edge admitted (for routes whose operation is not open)."""
    principal: Principal = request.state.principal
    return principal
