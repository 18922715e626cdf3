"""Identity and the edge, without a network: static tokens, JWT verification against a JWKS (served by a mock
transport), the access table's decisions, and the production profile's refusals."""

from __future__ import annotations

import base64
import json
import random
import secrets
import string
import time
from collections.abc import Callable

import httpx
import jwt
import pytest
from fastapi import APIRouter
from pydantic import ValidationError

from modelyard.access import ANY_ROLE, OPEN, AccessEdge, Authenticator, roles
from modelyard.auth import (
    AuthSettings,
    PermissionDenied,
    Principal,
    Role,
    TokenGrant,
    Unauthenticated,
    token_weakness,
)
from modelyard.contracts.registry.v1 import registry_service_pb2
from modelyard.oidc import IdentityProviderUnavailable, JwksKeys, JwtVerifier, claim, roles_of
from modelyard.runtime import GrpcApi, Service
from modelyard.settings import ServiceSettings, is_loopback
from modelyard.testing.oidc import IdentityProvider

pytestmark = pytest.mark.unit

REGISTRY = registry_service_pb2.DESCRIPTOR.services_by_name["RegistryService"]
ISSUER = "https://idp.test/realms/modelyard"
STRONG = secrets.token_urlsafe(32)


@pytest.fixture
def provider() -> IdentityProvider:
    provider = IdentityProvider()
    provider.issuer = ISSUER
    return provider


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def verifier_of(
    provider: IdentityProvider, clock: Callable[[], float] = time.monotonic, **overrides: object
) -> JwtVerifier:
    """A verifier whose JWKS requests go to `provider` through a mock transport (no network)."""

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/.well-known/openid-configuration"):
            return httpx.Response(200, json={"issuer": ISSUER, "jwks_uri": ISSUER + "/jwks"})
        provider.jwks_requests += 1
        return httpx.Response(200, json=provider.jwks())

    settings = provider.settings(**overrides)
    return JwtVerifier(settings, JwksKeys(settings, clock=clock, transport=httpx.MockTransport(answer)))


def unsigned(payload: dict[str, object], kid: str = "rsa-1") -> str:
    def part(document: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(document).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{part(payload)}."


# --- static tokens ----------------------------------------------------------------------------------------------


async def test_static_tokens_map_to_principals_and_roles() -> None:
    settings = AuthSettings(
        tokens={"s3cret": TokenGrant(principal="ci", roles=frozenset({Role.PUBLISHER}))}, allow_anonymous=False
    )
    authenticator = Authenticator(settings)
    assert await authenticator.authenticate("Bearer s3cret") == Principal("ci", frozenset({Role.PUBLISHER}))
    for bad in (None, "", "Bearer wrong", "Basic s3cret", "Bearer "):
        with pytest.raises(Unauthenticated):
            await authenticator.authenticate(bad)
    anonymous = await Authenticator(AuthSettings()).authenticate(None)
    assert anonymous.name == "anonymous" and anonymous.has_any([Role.PUBLISHER, Role.INFERENCE, Role.FEEDBACK])


def test_roles_are_required_and_admin_holds_them_all() -> None:
    Principal("root", frozenset({Role.ADMIN})).require("anything", [Role.APPROVER])
    with pytest.raises(PermissionDenied, match="needs one of the roles"):
        Principal("v", frozenset({Role.VIEWER})).require("approve", [Role.APPROVER])


# --- JWT ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kid", ["rsa-1", "ec-1", "ed-1"])
async def test_a_valid_jwt_gives_its_subject_and_known_roles(provider: IdentityProvider, kid: str) -> None:
    verifier = verifier_of(provider)
    token = provider.token("alice", ["publisher", "offline_access"], kid=kid)
    assert await verifier.verify(token) == Principal("alice", frozenset({Role.PUBLISHER}))


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"exp": -120}, "expired"),
        ({"aud": "another-api"}, "audience"),
        ({"iss": "https://evil.test"}, "another issuer"),
        ({"nbf": 600}, "not valid yet"),
    ],
)
async def test_claims_are_checked(provider: IdentityProvider, claims: dict[str, object], message: str) -> None:
    """Times are offsets from now, taken when the test runs (not when it is collected)."""
    now = int(time.time())
    token_claims = {k: now + v if k in {"exp", "nbf"} and isinstance(v, int) else v for k, v in claims.items()}
    with pytest.raises(Unauthenticated, match=message):
        await verifier_of(provider).verify(provider.token("alice", ["admin"], **token_claims))


async def test_expiry_allows_the_configured_clock_skew(provider: IdentityProvider) -> None:
    just_expired = provider.token("alice", exp=int(time.time()) - 10)
    assert (await verifier_of(provider, leeway_s=30).verify(just_expired)).name == "alice"
    with pytest.raises(Unauthenticated, match="expired"):
        await verifier_of(provider, leeway_s=0).verify(just_expired)


async def test_unsigned_tampered_and_foreign_tokens_are_refused(provider: IdentityProvider) -> None:
    verifier = verifier_of(provider)
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": ISSUER,
        "aud": "modelyard",
        "sub": "mallory",
        "exp": now + 60,
        "roles": ["admin"],
    }
    with pytest.raises(Unauthenticated, match="algorithm is not accepted"):
        await verifier.verify(unsigned(claims))
    header, _, signature = provider.token("alice", ["viewer"]).split(".")
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(Unauthenticated, match="signature or claims are invalid"):
        await verifier.verify(f"{header}.{forged}.{signature}")
    stranger = IdentityProvider()  # same key ids, other keys
    stranger.issuer = ISSUER
    with pytest.raises(Unauthenticated, match="signature or claims are invalid"):
        await verifier.verify(stranger.token("mallory", ["admin"]))
    with pytest.raises(Unauthenticated, match="not a valid JWT"):
        await verifier.verify("not.a.jwt")


async def test_hmac_signed_with_the_public_key_is_refused(provider: IdentityProvider) -> None:
    """The classic confusion attack: HS256 "signed" with the provider's public key as the secret."""
    public_pem = provider.jwks()["keys"][0]["n"].encode()
    token = jwt.encode(
        {"iss": ISSUER, "aud": "modelyard", "sub": "m", "exp": int(time.time()) + 60},
        public_pem,
        algorithm="HS256",
        headers={"kid": "rsa-1"},
    )
    with pytest.raises(Unauthenticated, match="algorithm is not accepted"):
        await verifier_of(provider).verify(token)


async def test_a_token_whose_algorithm_differs_from_its_key_is_refused(provider: IdentityProvider) -> None:
    # An EC-signed token claiming the RSA key's id.
    _, payload, signature = provider.token("alice", kid="ec-1").split(".")
    swapped = base64.urlsafe_b64encode(json.dumps({"alg": "ES256", "kid": "rsa-1"}).encode()).rstrip(b"=").decode()
    with pytest.raises(Unauthenticated, match="does not match its key"):
        await verifier_of(provider).verify(f"{swapped}.{payload}.{signature}")


async def test_unknown_kid_fetches_the_keys_once_then_waits(provider: IdentityProvider) -> None:
    clock = Clock()
    verifier = verifier_of(provider, clock, jwks_min_refresh_s=30)
    await verifier.verify(provider.token("alice"))
    assert provider.jwks_requests == 1
    provider.add_key("rsa-2", "RS256")  # rotation: the provider signs with a key we have not seen
    assert (await verifier.verify(provider.token("bob", kid="rsa-2"))).name == "bob"
    assert provider.jwks_requests == 2, "an unknown key id fetches the key set again, once"
    for _ in range(5):  # made-up key ids do not turn into requests to the provider
        with pytest.raises(Unauthenticated, match="unknown key"):
            await verifier.verify(_with_kid(provider.token("x"), "made-up"))
    assert provider.jwks_requests == 2
    clock.now += 31
    with pytest.raises(Unauthenticated, match="unknown key"):
        await verifier.verify(_with_kid(provider.token("x"), "made-up"))
    assert provider.jwks_requests == 3, "after the minimum interval, an unknown key id may fetch again"
    clock.now += 3600 + 1
    await verifier.verify(provider.token("alice"))
    assert provider.jwks_requests == 4, "stale keys are fetched again"


def _with_kid(token: str, kid: str) -> str:
    _, payload, signature = token.split(".")
    header = base64.urlsafe_b64encode(json.dumps({"alg": "RS256", "kid": kid}).encode()).rstrip(b"=").decode()
    return f"{header}.{payload}.{signature}"


async def test_an_unreachable_provider_is_unavailable_not_unauthenticated(provider: IdentityProvider) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    settings = provider.settings()
    verifier = JwtVerifier(settings, JwksKeys(settings, transport=httpx.MockTransport(refuse)))
    with pytest.raises(IdentityProviderUnavailable):
        await verifier.verify(provider.token("alice"))


def test_roles_come_from_a_dotted_claim() -> None:
    claims = {"realm_access": {"roles": ["approver", "uma_authorization"]}, "scope": "viewer feedback"}
    assert roles_of(claim(claims, "realm_access.roles")) == {Role.APPROVER}
    assert roles_of(claim(claims, "scope")) == {Role.VIEWER, Role.FEEDBACK}
    assert claim(claims, "realm_access.missing.deeper") is None
    assert roles_of(None) == frozenset()


async def test_principal_claim_is_configurable(provider: IdentityProvider) -> None:
    verifier = verifier_of(provider, principal_claim="preferred_username", roles_claim="realm_access.roles")
    token = provider.token("f81d4fae", preferred_username="carol", realm_access={"roles": ["approver"]})
    assert await verifier.verify(token) == Principal("carol", frozenset({Role.APPROVER}))


async def test_static_tokens_and_jwts_work_side_by_side(provider: IdentityProvider) -> None:
    settings = AuthSettings(
        tokens={STRONG: TokenGrant(principal="ci", roles=frozenset({Role.SERVICE}))},
        oidc=provider.settings(),
        allow_anonymous=False,
    )
    authenticator = Authenticator(settings, verifier_of(provider))
    assert (await authenticator.authenticate(f"Bearer {STRONG}")).name == "ci"
    assert (await authenticator.authenticate(f"Bearer {provider.token('alice')}")).name == "alice"
    with pytest.raises(Unauthenticated, match="unknown bearer token"):
        await authenticator.authenticate("Bearer not-a-jwt")


# --- the edge -------------------------------------------------------------------------------------------------


async def test_the_edge_enforces_the_table_and_fails_closed() -> None:
    tokens = {
        "v" * 8: TokenGrant(principal="val", roles=frozenset({Role.VIEWER})),
        "a" * 8: TokenGrant(principal="root", roles=frozenset({Role.ADMIN})),
    }
    edge = AccessEdge(
        Authenticator(AuthSettings(tokens=tokens, allow_anonymous=False)),
        {"Read": roles(Role.VIEWER), "Write": roles(Role.PUBLISHER), "Probe": OPEN, "Decide": ANY_ROLE},
    )
    assert edge.missing(["Read", "Other"]) == ["Other"]
    assert await edge.admit("Probe", None) is None
    assert (await edge.admit("Read", "Bearer " + "v" * 8)).name == "val"  # type: ignore[union-attr]
    assert (await edge.admit("Decide", "Bearer " + "v" * 8)).name == "val"  # type: ignore[union-attr]
    assert (await edge.admit("Write", "Bearer " + "a" * 8)).name == "root"  # type: ignore[union-attr]
    with pytest.raises(PermissionDenied):
        await edge.admit("Write", "Bearer " + "v" * 8)
    with pytest.raises(Unauthenticated):
        await edge.admit("Read", None)
    with pytest.raises(PermissionDenied, match="no access rule"):
        await edge.admit("Other", "Bearer " + "a" * 8)


async def test_anonymous_without_the_role_is_asked_for_a_token() -> None:
    edge = AccessEdge(Authenticator(AuthSettings(anonymous_roles=frozenset({Role.VIEWER}))), {"W": roles(Role.ADMIN)})
    with pytest.raises(Unauthenticated, match="needs a bearer token"):
        await edge.admit("W", None)


def test_a_service_whose_table_misses_a_method_or_route_does_not_build() -> None:
    router = APIRouter()

    @router.get("/extra", name="Extra")
    async def extra() -> None: ...

    api = GrpcApi(REGISTRY.full_name, lambda server: None)
    table = {method.name: OPEN for method in REGISTRY.methods if method.name != "SetAlias"}
    with pytest.raises(ValueError, match="no rule for Extra, SetAlias"):
        Service(ServiceSettings(), access=table, grpc_apis=[api], routers=[router])
    Service(ServiceSettings(), access={**table, "SetAlias": OPEN, "Extra": OPEN}, grpc_apis=[api], routers=[router])


# --- production profile ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "why"),
    [
        ("short", "shorter than"),
        ("replace-with-a-long-random-token-alice", "placeholder"),
        ("change-me-change-me-change-me", "placeholder"),
        ("<your-token-goes-here-please>", "placeholder"),
        ("a" * 40, "entropy"),
        ("abababababababababababababababab", "entropy"),
        ("0123456789012345678901234567890123", "entropy"),
    ],
)
def test_weak_tokens_are_named(token: str, why: str) -> None:
    assert why in (token_weakness(token) or "")


def test_generated_tokens_pass() -> None:
    # Drawn like secrets.token_urlsafe(24) / token_hex(16), but seeded: the same 400 tokens on every run.
    draw = random.Random(1234)
    urlsafe = string.ascii_letters + string.digits + "-_"
    for _ in range(200):
        assert token_weakness("".join(draw.choice(urlsafe) for _ in range(32))) is None
        assert token_weakness("".join(draw.choice("0123456789abcdef") for _ in range(32))) is None


def production(**auth: object) -> ServiceSettings:
    # Behind a TLS-terminating proxy: TLS is test_tls_settings.py's business.
    return ServiceSettings(
        profile="production", host="0.0.0.0", auth=AuthSettings.model_validate(auth), tls={"terminated_by_proxy": True}
    )


def test_production_refuses_unsafe_auth() -> None:
    with pytest.raises(ValidationError, match="anonymous access is on"):
        production(tokens={STRONG: {"principal": "x", "roles": ["viewer"]}})
    with pytest.raises(ValidationError, match="neither tokens nor OIDC"):
        production(allow_anonymous=False)
    with pytest.raises(ValidationError, match="alice: looks like a placeholder"):
        production(
            allow_anonymous=False,
            tokens={"replace-with-a-long-random-token-alice": {"principal": "alice", "roles": []}},
        )
    with pytest.raises(ValidationError, match="https"):
        production(allow_anonymous=False, oidc={"issuer": "http://idp", "audience": "a"})
    assert production(allow_anonymous=False, tokens={STRONG: {"principal": "x", "roles": ["viewer"]}}).auth.tokens
    assert (
        production(allow_anonymous=False, oidc={"issuer": "https://idp/", "audience": "a"}).auth.oidc.issuer
        == "https://idp"
    )  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.0.0.2",
        "127.255.255.254",
        "localhost",
        "LOCALHOST.",
        "api.localhost",
        "::1",
        "[::1]",
        "0:0:0:0:0:0:0:1",
        "::ffff:127.0.0.1",
        "127.1",
        "0x7f.0.0.1",
        "2130706433",
    ],
)
def test_every_loopback_form_is_refused_in_production(host: str) -> None:
    assert is_loopback(host)
    with pytest.raises(ValidationError, match="loopback"):
        ServiceSettings(
            profile="production",
            host=host,
            auth=AuthSettings(allow_anonymous=False, tokens={STRONG: TokenGrant(principal="x", roles=frozenset())}),
        )


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.7", "registry", "modelyard.example.com", "128.0.0.1"])
def test_reachable_hosts_are_not_loopback(host: str) -> None:
    assert not is_loopback(host)
