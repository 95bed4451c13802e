"""A real token issuer for tests: RSA and EC key pairs (cryptography), their JWKS served
over loopback by a small HTTP server, and signed access tokens (PyJWT)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from service.config import Settings

ISSUER = "https://issuer.test/realms/hospital"
AUDIENCE = "tumour-response"
ALL_SCOPES = "system/*.*"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass
class Issuer:
    """Signing keys by kid and the JWKS document of their public halves."""

    keys: dict[str, tuple[str, PrivateKey]] = field(default_factory=dict)
    published: set[str] = field(default_factory=set)
    fetches: int = 0
    url: str = ""

    def add_key(self, kid: str, algorithm: str, *, publish: bool = True) -> None:
        private: PrivateKey
        if algorithm.startswith("ES"):
            private = ec.generate_private_key(ec.SECP256R1())
        else:
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.keys[kid] = (algorithm, private)
        if publish:
            self.published.add(kid)

    def jwks(self) -> dict[str, Any]:
        found = []
        for kid in sorted(self.published):
            algorithm, private = self.keys[kid]
            public = private.public_key()
            if isinstance(public, ec.EllipticCurvePublicKey):
                jwk = ECAlgorithm.to_jwk(public, as_dict=True)
            else:
                jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
            found.append({**jwk, "kid": kid, "use": "sig", "alg": algorithm})
        return {"keys": found}

    def public_pem(self, kid: str) -> bytes:
        return (
            self.keys[kid][1]
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def token(
        self,
        kid: str = "rsa-1",
        *,
        scope: str = ALL_SCOPES,
        tenant: Any = "tenant-a",
        lifetime: int = 300,
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A signed access token; *claims* override or (as None) remove the defaults."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "client-1",
            "client_id": "client-1",
            "iat": now,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
            "scope": scope,
            "tenant": tenant,
            **claims,
        }
        payload = {name: value for name, value in payload.items() if value is not None}
        algorithm, private = self.keys[kid]
        return jwt.encode(
            payload, private, algorithm=algorithm, headers={"kid": kid, **(headers or {})}
        )


def unsigned(payload: dict[str, Any], header: dict[str, Any], secret: bytes | None = None) -> str:
    """A token built by hand: ``alg: none`` (no signature) or HS256 over *secret*."""

    def part(value: bytes) -> str:
        return base64.urlsafe_b64encode(value).rstrip(b"=").decode()

    signing_input = f"{part(json.dumps(header).encode())}.{part(json.dumps(payload).encode())}"
    if secret is None:
        return f"{signing_input}."
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{part(signature)}"


@contextmanager
def serving(issuer: Issuer) -> Iterator[Issuer]:
    """Serve *issuer*'s JWKS at ``issuer.url`` (loopback) while the block runs."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            issuer.fetches += 1
            body = json.dumps(issuer.jwks()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    issuer.url = f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    try:
        yield issuer
    finally:
        server.shutdown()
        server.server_close()


def auth_settings(issuer: Issuer, database_url: str, **more: Any) -> Settings:
    """Settings with auth on against *issuer*, storing in *database_url*."""
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=database_url,
        auth_jwks_url=issuer.url,
        auth_issuer=ISSUER,
        auth_audience=AUDIENCE,
        **more,
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
