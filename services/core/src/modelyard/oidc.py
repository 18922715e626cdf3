"""JWT access tokens of an OIDC provider: signature by the provider's JWKS, then issuer, audience and times.

The key set is cached; a token signed with a key id we do not hold fetches it again (key rotation), at most once
per `jwks_min_refresh_s`, so a flood of tokens with made-up key ids cannot turn into a flood of requests to the
provider. Only asymmetric algorithms of the allow-list are accepted: `none` and HMAC never are (an HMAC "verified"
with a public key would let anyone who has that key sign).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import jwt

from modelyard.auth import AuthError, OidcSettings, Principal, Role, Unauthenticated
from modelyard.errors import ErrorKind

log = logging.getLogger(__name__)
DISCOVERY_PATH = "/.well-known/openid-configuration"


class IdentityProviderUnavailable(AuthError):
    """The provider's keys cannot be fetched: the caller may retry (not the caller's fault)."""

    kind = ErrorKind.UNAVAILABLE


JwkDict = dict[str, Any]


class JwksKeys:
    """The provider's signing keys by key id, fetched on first use, when stale, and on an unknown key id."""

    def __init__(
        self,
        settings: OidcSettings,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """`transport` replaces the network (tests)."""
        self._settings = settings
        self._clock = clock
        self._transport = transport
        self._jwks_url = settings.jwks_url
        self._keys: dict[str, JwkDict] = {}
        self._parsed: dict[tuple[str, str], jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._unknown_kid_fetch_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0  # how often the key set was fetched (metrics and tests)

    async def key(self, kid: str, algorithm: str) -> jwt.PyJWK:
        """The key `kid` bound to `algorithm`; raises Unauthenticated when the provider does not have it."""
        if self._stale() or kid not in self._keys:
            await self._refresh(kid)
        jwk = self._keys.get(kid)
        if jwk is None:
            raise Unauthenticated("token signed with an unknown key")
        if jwk.get("alg", algorithm) != algorithm:
            raise Unauthenticated("token algorithm does not match its key")
        parsed = self._parsed.get((kid, algorithm))
        if parsed is None:
            try:
                parsed = self._parsed[(kid, algorithm)] = jwt.PyJWK(jwk, algorithm)
            except jwt.PyJWKError:
                raise Unauthenticated("token algorithm does not match its key") from None
        return parsed

    def _stale(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at > self._settings.jwks_max_age_s

    async def _refresh(self, kid: str) -> None:
        async with self._lock:  # concurrent callers wait for one fetch instead of each making their own
            if not self._stale() and kid in self._keys:
                return  # fetched while we waited
            if not self._stale():  # an unknown key id: at most one such fetch per jwks_min_refresh_s
                last = self._unknown_kid_fetch_at
                if last is not None and self._clock() - last < self._settings.jwks_min_refresh_s:
                    return
                self._unknown_kid_fetch_at = self._clock()
            try:
                keys = await self._fetch()
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                log.warning("cannot fetch the OIDC provider's keys: %r", exc)
                if self._fetched_at is None:
                    raise IdentityProviderUnavailable("the identity provider's keys cannot be fetched") from None
                return  # keep the keys we have; the next stale check tries again
            self._keys = keys
            self._parsed.clear()
            self._fetched_at = self._clock()

    async def _fetch(self) -> dict[str, JwkDict]:
        self.fetches += 1
        async with httpx.AsyncClient(timeout=self._settings.http_timeout_s, transport=self._transport) as client:
            if not self._jwks_url:
                discovery = await client.get(self._settings.issuer + DISCOVERY_PATH)
                discovery.raise_for_status()
                self._jwks_url = str(discovery.json()["jwks_uri"])
            response = await client.get(self._jwks_url)
            response.raise_for_status()
            document = response.json()
        return {
            str(jwk["kid"]): jwk
            for jwk in document["keys"]
            if isinstance(jwk, dict) and "kid" in jwk and jwk.get("use", "sig") == "sig"
        }


class JwtVerifier:
    """Bearer JWT -> principal: signature, `iss`, `aud`, `exp`/`nbf`/`iat` with leeway, roles from a claim."""

    def __init__(self, settings: OidcSettings, keys: JwksKeys | None = None) -> None:
        self._settings = settings
        self.keys = keys or JwksKeys(settings)

    @staticmethod
    def looks_like_jwt(token: str) -> bool:
        return token.count(".") == 2

    async def verify(self, token: str) -> Principal:
        settings = self._settings
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise Unauthenticated("bearer token is not a valid JWT") from None
        algorithm, kid = header.get("alg"), header.get("kid")
        if algorithm not in settings.algorithms:
            raise Unauthenticated("token signature algorithm is not accepted")
        if not isinstance(kid, str) or not kid:
            raise Unauthenticated("token names no signing key (kid)")
        key = await self.keys.key(kid, algorithm)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=settings.audience,
                issuer=settings.issuer,
                leeway=settings.leeway_s,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token has expired") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("token is not meant for this audience") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("token is from another issuer") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("token is not valid yet") from None
        except jwt.InvalidTokenError:
            raise Unauthenticated("token signature or claims are invalid") from None
        name = claim(claims, settings.principal_claim)
        if not isinstance(name, str) or not name:
            raise Unauthenticated(f"token has no {settings.principal_claim!r} claim")
        return Principal(name, roles_of(claim(claims, settings.roles_claim)))


def claim(claims: Mapping[str, Any], path: str) -> Any:
    """A claim by dotted path (`realm_access.roles`); None when any part is missing."""
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def roles_of(value: Any) -> frozenset[Role]:
    """Our roles among a claim's values (a list, or a space-separated string); the provider's others are ignored."""
    names = value.split() if isinstance(value, str) else value if isinstance(value, list) else []
    known = {role.value for role in Role}
    return frozenset(Role(name) for name in names if isinstance(name, str) and name in known)
