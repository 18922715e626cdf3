"""HTTP side of `modelyard.auth`: a FastAPI dependency for the caller's principal, and status codes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Header

from modelyard.auth import AuthError, Principal, TokenAuthenticator, Unauthenticated

STATUS: dict[type[AuthError], int] = {Unauthenticated: 401, AuthError: 403}
# Sent with every 401, as RFC 6750 asks.
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="modelyard"'}


def principal_dependency(authenticator: TokenAuthenticator) -> Callable[[str | None], Principal]:
    """A dependency that authenticates the `Authorization: Bearer <token>` header (or anonymous, if allowed)."""

    def principal(
        authorization: Annotated[str | None, Header(description="Bearer <token>")] = None,
    ) -> Principal:
        return authenticator.authenticate(authorization)

    return principal
