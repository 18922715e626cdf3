"""Identity, transport-free: a bearer token (a configured static token or an OIDC JWT) maps to a principal and roles.

Every endpoint goes through one edge (`modelyard.access` holds each service's table of method -> roles; the thin
adapters `modelyard.runtime.auth_grpc` and `modelyard.runtime.auth_http` read the `authorization` header, ask the
`Authenticator` who is calling and enforce the table). Use cases may still `principal.require(...)` where a rule
is their business (separation of duties, protected aliases).
Static tokens are kept as sha256 digests so that the configured secrets are compared by hash lookup, not by a
character-by-character equality an attacker could time.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from modelyard.errors import ErrorKind, KindedError

ANONYMOUS = "anonymous"
MIN_PRODUCTION_TOKEN_LENGTH = 24
# A secret from `secrets.token_urlsafe(24)` estimates at about 140 bits; a word, a repeated pattern or a
# keyboard run stays far below.
MIN_PRODUCTION_TOKEN_BITS = 96
# A 32-character hex token (the least varied generated kind) shows well above 2.5; "aaaabbbbaaaabbbb..." shows 1.
MIN_BITS_PER_CHAR = 2.0
# Words of example values (".env.example", docs): a token containing one was typed by a person, not generated.
_PLACEHOLDER = re.compile(r"replace|change|placeholder|example|secret|password|token|dummy|sample|<|>|\.\.\.", re.I)
# Never `none`, never an HMAC: with a public key as the "secret", HS256 would let anyone forge tokens.
JwtAlgorithm = Literal["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]


class Role(StrEnum):
    VIEWER = "viewer"
    PUBLISHER = "publisher"
    APPROVER = "approver"
    ADMIN = "admin"
    SERVICE = "service"
    INFERENCE = "inference"  # calls models on serving (when serving requires a token for it)
    FEEDBACK = "feedback"  # sends ground truth to the monitor


class AuthError(KindedError):
    """Base of the access errors; the message is safe to show the caller."""

    kind = ErrorKind.PERMISSION_DENIED


class Unauthenticated(AuthError):
    """No credentials where they are required, or credentials we do not know."""

    kind = ErrorKind.UNAUTHENTICATED


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


class OidcSettings(BaseModel):
    """JWT access tokens of an OpenID Connect provider (Keycloak, Dex, Entra ID, Okta), verified with its JWKS."""

    issuer: str = Field(min_length=1, description="expected `iss`, e.g. https://idp.example.com/realms/modelyard")
    audience: str = Field(min_length=1, description="expected `aud` (the client id or API identifier)")
    jwks_url: str = Field(
        "", description="the provider's JWKS; default: `jwks_uri` of <issuer>/.well-known/openid-configuration"
    )
    roles_claim: str = Field(
        "roles", min_length=1, description="claim holding the roles, dotted for nested ones (realm_access.roles)"
    )
    principal_claim: str = Field("sub", min_length=1, description="claim naming the caller (sub, preferred_username)")
    algorithms: frozenset[JwtAlgorithm] = Field(
        frozenset({"RS256", "ES256", "EdDSA"}), min_length=1, description="signature algorithms accepted"
    )
    leeway_s: float = Field(30.0, ge=0, le=300, description="clock skew allowed on exp, nbf and iat")
    jwks_max_age_s: float = Field(3600.0, gt=0, description="keys are fetched again after this long")
    jwks_min_refresh_s: float = Field(
        30.0, ge=0, description="a token with an unknown key id fetches the keys at most this often"
    )
    http_timeout_s: float = Field(5.0, gt=0, description="deadline of one request to the provider")

    @field_validator("issuer")
    @classmethod
    def _issuer_without_trailing_slash(cls, issuer: str) -> str:
        return issuer.rstrip("/")


class AuthSettings(BaseModel):
    """Configured tokens, OIDC, and whether callers without a token are let in (only the local profile should)."""

    tokens: dict[str, TokenGrant] = Field(default_factory=dict, description="bearer token -> principal and roles")
    oidc: OidcSettings | None = Field(None, description="accept JWTs of this OIDC provider besides the static tokens")
    allow_anonymous: bool = Field(default=True, description="callers without a token act as `anonymous`")
    anonymous_roles: frozenset[Role] = Field(
        default=frozenset(Role), description="roles of anonymous callers (all of them by default, for local use)"
    )
    protect_metrics: bool = Field(False, description="/metrics needs a token with role viewer or service")

    def production_problems(self) -> list[str]:
        """Why these settings are unsafe for production (empty when they are fine)."""
        problems = []
        if self.allow_anonymous:
            problems.append("anonymous access is on (set allow_anonymous=false)")
        if not self.tokens and self.oidc is None:
            problems.append("neither tokens nor OIDC are configured")
        weak = sorted(
            f"{grant.principal}: {why}" for token, grant in self.tokens.items() if (why := token_weakness(token))
        )
        if weak:
            problems.append(f"unsafe tokens ({'; '.join(weak)}): use random ones, e.g. secrets.token_urlsafe(32)")
        if self.oidc is not None and not self.oidc.issuer.startswith("https://"):
            problems.append("the OIDC issuer must be an https:// URL")
        return problems


def token_weakness(token: str) -> str | None:
    """Why a static token is unfit for production, or None: placeholder-looking, short or low in entropy."""
    if len(token) < MIN_PRODUCTION_TOKEN_LENGTH:
        return f"shorter than {MIN_PRODUCTION_TOKEN_LENGTH} characters"
    if _PLACEHOLDER.search(token):
        return "looks like a placeholder"
    if any(token == (token[:period] * len(token))[: len(token)] for period in range(1, len(token) // 2 + 1)):
        return "repeats a short pattern (low entropy)"
    if estimated_bits(token) < MIN_PRODUCTION_TOKEN_BITS:
        return f"less than {MIN_PRODUCTION_TOKEN_BITS} bits of entropy"
    if _shannon_bits_per_char(token) < MIN_BITS_PER_CHAR:
        return "too few distinct characters, too unevenly used (low entropy)"
    return None


def estimated_bits(token: str) -> float:
    """What guessing the token faces if it was drawn at random from the character classes it uses (lowercase,
    uppercase, digits, other): its length times log2 of their combined size. Deterministic for a generated
    token (a hex or url-safe one of 32 characters always passes), unlike the Shannon estimate of a short string,
    which is often well below its true entropy; that one only catches strings a person typed."""
    classes = (str.islower, str.isupper, str.isdigit)
    alphabet = sum(size for size, test in zip((26, 26, 10), classes, strict=True) if any(map(test, token)))
    alphabet += 32 if any(not (c.isascii() and c.isalnum()) for c in token) else 0
    return len(token) * math.log2(max(alphabet, 2))


def _shannon_bits_per_char(token: str) -> float:
    counts = Counter(token)
    return -sum(n / len(token) * math.log2(n / len(token)) for n in counts.values())


class StaticTokens:
    """The configured token map, looked up by digest."""

    def __init__(self, tokens: Mapping[str, TokenGrant]) -> None:
        self._grants: Mapping[str, Principal] = {
            _hash(token): Principal(grant.principal, grant.roles) for token, grant in tokens.items()
        }

    def get(self, token: str) -> Principal | None:
        return self._grants.get(_hash(token))


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def bearer_token(authorization: str) -> str:
    """The token of an `Authorization: Bearer <token>` header value."""
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("authorization must be 'Bearer <token>'")
    return token.strip()
