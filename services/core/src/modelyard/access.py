"""The auth edge, transport-free: who is calling (`Authenticator`) and whether the table lets them (`AccessEdge`).

Every service declares one table: operation -> `Rule`. An operation is a gRPC method's name in the service's API
(`CreateRegisteredModel`), and the REST route that does the same carries the same name, so one entry covers
both transports. The runtime adds its own operations (health, readiness, reflection, metrics) and refuses to
start a service whose table misses any of its methods or routes; at run time an operation without a rule is
refused too. Use cases may check more (separation of duties, protected aliases, a policy's approver role):
the edge decides who may call a method at all, the handler what this caller may do with this request.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from modelyard.auth import ANONYMOUS, AuthSettings, PermissionDenied, Principal, Role, StaticTokens, Unauthenticated
from modelyard.auth import bearer_token as parse_bearer
from modelyard.oidc import JwtVerifier


@dataclass(frozen=True)
class Rule:
    """Who may call an operation: anyone, without a token (`roles` None), or a caller holding one of `roles`."""

    roles: frozenset[Role] | None

    @property
    def open(self) -> bool:
        return self.roles is None


OPEN = Rule(None)
ANY_ROLE = Rule(frozenset(Role))  # any authenticated caller: the use case decides (e.g. a policy's approver role)


def roles(*allowed: Role | Iterable[Role]) -> Rule:
    """A rule for callers holding any of the roles (admin always may); accepts roles and collections of roles."""
    flat: set[Role] = set()
    for item in allowed:
        flat.update([item] if isinstance(item, Role) else item)
    return Rule(frozenset(flat))


class Authenticator:
    """`Authorization` header value -> principal: a configured static token, an OIDC JWT, or anonymous."""

    def __init__(self, settings: AuthSettings, verifier: JwtVerifier | None = None) -> None:
        self._tokens = StaticTokens(settings.tokens)
        self._jwt = verifier or (JwtVerifier(settings.oidc) if settings.oidc is not None else None)
        self._anonymous = Principal(ANONYMOUS, settings.anonymous_roles) if settings.allow_anonymous else None

    async def authenticate(self, authorization: str | None) -> Principal:
        """Raises Unauthenticated (missing, malformed or unknown token; invalid JWT) or IdentityProviderUnavailable."""
        if not authorization:
            if self._anonymous is None:
                raise Unauthenticated("missing bearer token")
            return self._anonymous
        token = parse_bearer(authorization)
        principal = self._tokens.get(token)
        if principal is not None:
            return principal
        if self._jwt is not None and JwtVerifier.looks_like_jwt(token):
            return await self._jwt.verify(token)
        raise Unauthenticated("unknown bearer token")


class AccessEdge:
    """One service's table, enforced: the edge both transports call before any handler runs."""

    def __init__(self, authenticator: Authenticator, table: Mapping[str, Rule]) -> None:
        self.authenticator = authenticator
        self.table = dict(table)

    def missing(self, operations: Iterable[str]) -> list[str]:
        """The operations the table has no rule for (a service with any cannot start)."""
        return sorted({op for op in operations if op not in self.table})

    def is_open(self, operation: str | None) -> bool:
        """Whether anyone may call `operation` without a token (an operation without a rule is not open)."""
        rule = self.table.get(operation or "")
        return rule is not None and rule.open

    async def admit(self, operation: str | None, authorization: str | None) -> Principal | None:
        """The caller's principal (None for an open operation); raises an AuthError when the caller may not."""
        rule = self.table.get(operation or "")
        if rule is None:
            raise PermissionDenied("no access rule covers this method")  # fail closed
        if rule.roles is None:
            return None
        principal = await self.authenticator.authenticate(authorization)
        if principal.name == ANONYMOUS and not principal.has_any(rule.roles):
            raise Unauthenticated(f"{operation} needs a bearer token")
        principal.require(f"call {operation}", rule.roles)
        return principal
