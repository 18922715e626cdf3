"""gRPC side of `modelyard.auth`: the caller's principal from the `authorization` metadata, and status codes."""

from __future__ import annotations

import grpc

from modelyard.auth import AuthError, Principal, TokenAuthenticator, Unauthenticated

STATUS: dict[type[AuthError], grpc.StatusCode] = {
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    AuthError: grpc.StatusCode.PERMISSION_DENIED,
}


def principal_of(authenticator: TokenAuthenticator, context: grpc.aio.ServicerContext[object, object]) -> Principal:
    """Who is calling; raises Unauthenticated (missing or unknown token where one is required)."""
    metadata = {key.lower(): value for key, value in (context.invocation_metadata() or ())}
    authorization = metadata.get("authorization")
    return authenticator.authenticate(authorization if isinstance(authorization, str) else None)
