"""Identity and access, transport-free: a bearer token maps to a principal and roles, from configuration.

Services check `principal.require(...)` in their use cases; thin adapters (`modelyard.runtime.auth_grpc`,
`modelyard.runtime.auth_http`) turn the `authorization` header into a principal and errors into status codes.
Tokens are kept as sha256 digests so that the configured secrets are compared by hash lookup, not by a
character-by-character equality an attacker could time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, Field

ANONYMOUS = "anonymous"
MIN_PRODUCTION_TOKEN_LENGTH = 24


class Role(StrEnum):
    VIEWER = "viewer"
    PUBLISHER = "publisher"
    APPROVER = "approver"
    ADMIN = "admin"
    SERVICE = "service"


class AuthError(Exception):
    """Base of the two access errors; the message is safe to show the caller."""


class Unauthenticated(AuthError):
    """No credentials where they are required, or credentials we do not know."""


class PermissionDenied(AuthError):
    """Known caller, not allowed to do this."""


@dataclass(frozen=True)
class Principal:
    name: str
    roles: frozenset[Role]

    def has_any(self, roles: Iterable[Role]) -> bool:
        return Role.ADMIN in self.roles or not self.roles.isdisjoint(roles)

    def require(self, action: str, roles: Iterable[Role]) -> None:
        """Raise PermissionDenied unless the principal holds one of `roles` (admin holds them all)."""
        allowed = frozenset(roles)
        if not self.has_any(allowed):
            wanted = ", ".join(sorted(allowed | {Role.ADMIN}))
            raise PermissionDenied(f"{self.name} may not {action}: needs one of the roles {wanted}")


class TokenGrant(BaseModel):
    """What one configured bearer token stands for."""

    principal: str = Field(min_length=1)
    roles: frozenset[Role]


class AuthSettings(BaseModel):
    """Configured tokens and whether callers without one are let in (only the local profile should)."""

    tokens: dict[str, TokenGrant] = Field(default_factory=dict, description="bearer token -> principal and roles")
    allow_anonymous: bool = Field(default=True, description="callers without a token act as `anonymous`")
    anonymous_roles: frozenset[Role] = Field(
        default=frozenset(Role), description="roles of anonymous callers (all of them by default, for local use)"
    )

    def production_problems(self) -> list[str]:
        """Why these settings are unsafe for production (empty when they are fine)."""
        problems = []
        if self.allow_anonymous:
            problems.append("anonymous access is on (set allow_anonymous=false)")
        if not self.tokens:
            problems.append("no tokens are configured")
        short = [grant.principal for token, grant in self.tokens.items() if len(token) < MIN_PRODUCTION_TOKEN_LENGTH]
        if short:
            problems.append(f"tokens shorter than {MIN_PRODUCTION_TOKEN_LENGTH} characters for {', '.join(short)}")
        return problems


class TokenAuthenticator:
    def __init__(self, settings: AuthSettings) -> None:
        self._grants: Mapping[str, Principal] = {
            _hash(token): Principal(grant.principal, grant.roles) for token, grant in settings.tokens.items()
        }
        self._anonymous = Principal(ANONYMOUS, settings.anonymous_roles) if settings.allow_anonymous else None

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal behind an `Authorization` header value (`Bearer <token>`), or None for no header."""
        if not authorization:
            if self._anonymous is None:
                raise Unauthenticated("missing bearer token")
            return self._anonymous
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("authorization must be 'Bearer <token>'")
        principal = self._grants.get(_hash(token.strip()))
        if principal is None:
            raise Unauthenticated("unknown bearer token")
        return principal


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
