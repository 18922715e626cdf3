"""A test OIDC provider: keys it generates (RSA, EC P-256, Ed25519), tokens it signs, and its discovery document
and JWKS served over real HTTP on a free loopback port (`with IdentityProvider().serving(): ...`)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from modelyard.auth import OidcSettings

AUDIENCE = "modelyard"
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


class IdentityProvider:
    """Signs tokens with its current keys; `rotate()` adds a key its JWKS only shows from then on."""

    def __init__(self) -> None:
        self.keys: dict[str, tuple[str, PrivateKey]] = {}
        self.issuer = ""  # set once serving: http://127.0.0.1:<port>
        self.jwks_requests = 0
        self.add_key("rsa-1", "RS256")
        self.add_key("ec-1", "ES256")
        self.add_key("ed-1", "EdDSA")

    def add_key(self, kid: str, algorithm: str) -> None:
        key: PrivateKey
        if algorithm.startswith(("RS", "PS")):
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif algorithm == "ES256":
            key = ec.generate_private_key(ec.SECP256R1())
        else:
            key = ed25519.Ed25519PrivateKey.generate()
        self.keys[kid] = (algorithm, key)

    def jwks(self) -> dict[str, Any]:
        documents = []
        for kid, (algorithm, key) in self.keys.items():
            public = key.public_key()
            if isinstance(public, rsa.RSAPublicKey):
                jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
            elif isinstance(public, ec.EllipticCurvePublicKey):
                jwk = ECAlgorithm.to_jwk(public, as_dict=True)
            else:
                jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
            documents.append({**jwk, "kid": kid, "alg": algorithm, "use": "sig"})
        return {"keys": documents}

    def settings(self, **overrides: Any) -> OidcSettings:
        """Settings that trust this provider (discovery from the issuer, the http:// of a test server)."""
        return OidcSettings.model_validate({"issuer": self.issuer, "audience": AUDIENCE, **overrides})

    def token(self, subject: str = "user", roles: list[str] | None = None, kid: str = "rsa-1", **claims: Any) -> str:
        """A token valid for five minutes; `claims` override or add (exp=..., aud=..., iss=...)."""
        algorithm, key = self.keys[kid]
        now = int(time.time())
        payload = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": subject,
            "iat": now,
            "exp": now + 300,
            "roles": roles or [],
            **claims,
        }
        return jwt.encode(payload, key, algorithm=algorithm, headers={"kid": kid})

    @contextlib.contextmanager
    def serving(self) -> Iterator[IdentityProvider]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": provider.issuer, "jwks_uri": provider.issuer + "/jwks"}
                elif self.path == "/jwks":
                    provider.jwks_requests += 1
                    body = provider.jwks()
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the test's output is the assertions

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{server.server_address[1]}"
        thread = threading.Thread(target=server.serve_forever, name="test-oidc-provider", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join()
