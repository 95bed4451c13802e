"""Who is calling, and may they: OAuth2 bearer JWTs and SMART scopes on every route
(contract section 1; reliability.md sections 2.6, 4 and 5).

* :data:`ROUTE_SCOPES` is the one table of what each route (method, path template) needs;
  :func:`authorize`, an app-wide dependency (``create_app``), enforces it on every request
  and leaves the caller, a :class:`Principal`, on ``request.state.principal``. A route
  missing from the table is refused (403), and a test lists every route against it.
* Tokens are verified by :class:`Guard`: size, an asymmetric algorithm allow-list, a key
  from the issuer's JWKS (:class:`Jwks`), signature, exact ``iss`` and ``aud``, ``exp``
  with leeway, a bounded lifetime, a tenant claim.
* Without a JWKS auth is off: every request runs as the configured tenant with every
  scope, which :func:`check_exposure` allows only on a loopback address unless
  ``TR_AUTH_DISABLED_ON_PUBLIC_ADDRESS`` says otherwise.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import anyio.to_thread
import jwt
from fastapi import FastAPI, Request

from service.config import Settings
from service.entrypoints.api.errors import FHIR_JSON, HttpProblem

logger = logging.getLogger(__name__)

MAX_JWKS_BYTES: Final = 1024 * 1024
JWKS_TIMEOUT_SECONDS: Final = 10
_TOKEN_TYPES: Final = frozenset({"jwt", "at+jwt", "application/at+jwt"})  # RFC 9068 section 4
_BEARER: Final = re.compile(r"Bearer +([A-Za-z0-9._~+/-]+=*)", re.IGNORECASE)  # RFC 6750 2.1
_V1: Final = {"read": "rs", "write": "cud", "*": "cruds"}  # SMART v1 names, as v2 letters
_V2: Final = re.compile(r"c?r?u?d?s?")
_TENANT_CHARS: Final = 64  # db_schema: tenant is String(64)


@dataclass(frozen=True, slots=True)
class Access:
    """One SMART interaction on one resource type: ``c`` create, ``r`` read, ``u`` update,
    ``d`` delete, ``s`` search (SMART App Launch v2 scopes)."""

    resource: str
    interaction: str

    def __str__(self) -> str:
        """The SMART v1 scope that grants it, e.g. ``system/Observation.write``."""
        name = "read" if self.interaction in _V1["read"] else "write"
        return f"system/{self.resource}.{name}"


PUBLIC: Final[tuple[Access, ...]] = ()
_STORE: Final = (Access("Observation", "c"),)
_STORE_AND_ASSESS: Final = (Access("Observation", "c"), Access("DiagnosticReport", "r"))
_PAGES: Final = (Access("DiagnosticReport", "r"), Access("Patient", "r"))

# Every route of the app (method, path template) -> the accesses it needs, all of them.
ROUTE_SCOPES: Final[dict[tuple[str, str], tuple[Access, ...]]] = {
    ("GET", "/health"): PUBLIC,
    ("GET", "/ready"): PUBLIC,
    ("GET", "/fhir/metadata"): PUBLIC,
    ("POST", "/assessments"): _STORE_AND_ASSESS,
    ("POST", "/dicomweb/studies"): _STORE,
    ("POST", "/dicomweb/studies/{study}"): _STORE,
    ("POST", "/fhir/Observation"): _STORE,
    ("POST", "/fhir"): _STORE,
    ("GET", "/fhir/DiagnosticReport"): (Access("DiagnosticReport", "s"),),
    ("GET", "/fhir/Patient"): (Access("Patient", "s"),),
    **{
        ("GET", f"/fhir/{kind}/{{resource_id}}"): (Access(kind, "r"),)
        for kind in ("DiagnosticReport", "Observation", "BodyStructure", "Patient")
    },
    ("GET", "/ui/patients/{patient_id}"): _PAGES,
    ("GET", "/ui/patients/{patient_id}/reports/{day}.html"): _PAGES,
    ("GET", "/ui/patients/{patient_id}/reports/{day}.pdf"): _PAGES,
    ("GET", "/ui/cohort"): _PAGES,
    ("GET", "/metrics"): (Access("metrics", "r"),),
    ("GET", "/fhir/AuditEvent"): (Access("AuditEvent", "s"),),
}
# Served by FastAPI itself, outside the routers: the API description is public.
DOCUMENTATION_PATHS: Final = frozenset(
    {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
)


def granted(scopes: frozenset[str]) -> frozenset[tuple[str, str]]:
    """The (resource type or ``*``, interaction) pairs *scopes* grant. Only ``system/``
    scopes count; a v2 scope narrowed by a query (``?category=...``) grants nothing."""
    pairs: set[tuple[str, str]] = set()
    for scope in scopes:
        context, _, rest = scope.partition("/")
        resource, _, permission = rest.partition(".")
        if context != "system" or not resource or "?" in permission:
            continue
        letters = _V1.get(permission, permission if _V2.fullmatch(permission) else "")
        pairs.update((resource, letter) for letter in letters)
    return frozenset(pairs)


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of a request (``request.state.principal``)."""

    subject: str
    tenant: str
    scopes: frozenset[str]
    client_id: str | None = None

    def missing(self, needs: tuple[Access, ...]) -> list[Access]:
        """The accesses of *needs* the scopes do not grant."""
        pairs = granted(self.scopes)
        return [
            need
            for need in needs
            if (need.resource, need.interaction) not in pairs
            and ("*", need.interaction) not in pairs
        ]


class InsecureSettings(Exception):
    """The settings would expose the service without authentication."""


class _Rejected(Exception):
    """A token not accepted: 401 with OperationOutcome *code* (reliability.md section 4)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _unauthorized(code: str, message: str) -> HttpProblem:
    return HttpProblem(401, code, message, {"WWW-Authenticate": 'Bearer error="invalid_token"'})


def _forbidden(missing: list[Access]) -> HttpProblem:
    scopes = " ".join(str(access) for access in missing)
    return HttpProblem(
        403,
        "forbidden",
        f"the token's scopes do not grant {scopes}",
        {"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scopes}"'},
    )


class Jwks:
    """The issuer's public signing keys by ``kid``, loaded by *load* (the JWKS document).

    Fetched on first use, again when older than *max_age*, and when a token names an
    unknown ``kid``; never twice within *min_interval* seconds (reliability.md section 5:
    a stream of made-up ``kid`` values must not become a stream of fetches).
    """

    def __init__(
        self,
        load: Callable[[], bytes],
        *,
        min_interval: float,
        max_age: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load, self._clock = load, clock
        self._min_interval, self._max_age = min_interval, max_age
        self._keys: dict[str | None, dict[str, Any]] = {}
        self._prepared: dict[tuple[str | None, str], jwt.PyJWK] = {}
        self._fetched: float | None = None  # when the last fetch was tried
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def key(self, kid: str | None, algorithm: str) -> jwt.PyJWK:
        """The key named *kid* (the only key when the token names none), for *algorithm*;
        fetches the set first when due."""
        if self._due(kid):
            async with self._lock:
                if self._due(kid):
                    await anyio.to_thread.run_sync(self._fetch)
        jwk = self._find(kid)
        if jwk is None:
            raise _Rejected("unknown", "no signing key has this kid")
        if jwk.get("alg", algorithm) != algorithm:
            raise _Rejected("unknown", "the key is not for this algorithm")
        prepared = self._prepared.get((kid, algorithm))
        if prepared is None:
            try:
                prepared = self._prepared[(kid, algorithm)] = jwt.PyJWK(jwk, algorithm)
            except jwt.PyJWKError:
                raise _Rejected("unknown", "the key does not fit the algorithm") from None
        return prepared

    def _find(self, kid: str | None) -> dict[str, Any] | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    def _due(self, kid: str | None) -> bool:
        now = self._clock()
        if self._fetched is None:
            return True
        if now - self._fetched < self._min_interval:
            return False
        return self._find(kid) is None or now - self._fetched > self._max_age

    def _fetch(self) -> None:
        self._fetched = self._clock()
        self.fetches += 1
        try:
            document = json.loads(self._load())
            keys = {
                key.get("kid"): key
                for key in document["keys"]
                if isinstance(key, dict) and key.get("kty") != "oct" and key.get("use") != "enc"
            }
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("JWKS not loaded (%s); keeping %d known keys", exc, len(self._keys))
            if not self._keys:
                raise HttpProblem(
                    503, "transient", "the token signing keys are unavailable", {"Retry-After": "5"}
                ) from exc
            return
        self._keys, self._prepared = keys, {}


def jwks_loader(settings: Settings) -> Callable[[], bytes]:
    """Reads the configured JWKS: the file, or the URL (http or https, at most 1 MiB)."""
    if settings.auth_jwks_file is not None:
        path: Path = settings.auth_jwks_file
        return path.read_bytes
    url = settings.auth_jwks_url
    assert url is not None and url.startswith(("http://", "https://"))  # the Field's pattern

    def fetch() -> bytes:
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=JWKS_TIMEOUT_SECONDS) as answer:  # nosec B310
            data: bytes = answer.read(MAX_JWKS_BYTES + 1)
        if len(data) > MAX_JWKS_BYTES:
            raise ValueError(f"JWKS over {MAX_JWKS_BYTES} bytes")
        return data

    return fetch


class Guard:
    """The authentication of the app: a token verifier, or (auth off) the local caller."""

    def __init__(self, settings: Settings, jwks: Jwks | None = None) -> None:
        self.settings = settings
        self.jwks = jwks
        self.local = Principal("local", settings.tenant, frozenset({"system/*.*"}))
        self.anonymous = Principal("anonymous", settings.tenant, frozenset())

    @classmethod
    def from_settings(cls, settings: Settings) -> Guard:
        if not settings.auth_enabled:
            return cls(settings)
        jwks = Jwks(
            jwks_loader(settings),
            min_interval=settings.auth_jwks_refetch_seconds,
            max_age=settings.auth_jwks_cache_seconds,
        )
        return cls(settings, jwks)

    async def principal(self, request: Request) -> Principal:
        """The caller: the local one when auth is off, else the bearer token's."""
        if self.jwks is None:
            return self.local
        match = _BEARER.fullmatch(request.headers.get("authorization", "").strip())
        if match is None:
            raise _unauthorized("login", "a bearer token is required")
        try:
            return self._principal(await self._claims(match.group(1)))
        except _Rejected as rejected:
            raise _unauthorized(rejected.code, str(rejected)) from None

    async def _claims(self, token: str) -> dict[str, Any]:
        settings = self.settings
        if len(token) > settings.auth_max_token_bytes:
            raise _Rejected("unknown", f"token over {settings.auth_max_token_bytes} bytes")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise _Rejected("unknown", "not a JWT") from None
        algorithm, kid = header.get("alg"), header.get("kid")
        if algorithm not in settings.auth_algorithms:
            raise _Rejected("unknown", f"algorithm {algorithm!r} not accepted")
        if str(header.get("typ", "JWT")).lower() not in _TOKEN_TYPES:
            raise _Rejected("unknown", "not an access token (typ)")
        if kid is not None and not isinstance(kid, str):
            raise _Rejected("unknown", "kid is not a string")
        assert self.jwks is not None
        key = await self.jwks.key(kid, algorithm)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=settings.auth_audience,
                issuer=settings.auth_issuer,
                leeway=settings.auth_leeway_seconds,
                options={"require": ["exp", "iat", "iss", "aud", "sub"], "strict_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise _Rejected("expired", "the token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise _Rejected("unknown", f"token not valid: {exc}") from None
        lifetime = int(claims["exp"]) - int(claims["iat"])  # both int() already, in decode
        if lifetime > settings.auth_max_token_lifetime_seconds:
            raise _Rejected("unknown", f"token lifetime {lifetime} s is too long")
        return claims

    def _principal(self, claims: dict[str, Any]) -> Principal:
        tenant = claims.get(self.settings.auth_tenant_claim)
        if not isinstance(tenant, str) or not 0 < len(tenant) <= _TENANT_CHARS:
            raise _Rejected("unknown", "the token names no tenant")
        scope = claims.get("scope", claims.get("scp", ""))
        scopes = scope.split() if isinstance(scope, str) else scope
        if not isinstance(scopes, list) or not all(isinstance(item, str) for item in scopes):
            raise _Rejected("unknown", "the scope claim is not a list of scopes")
        client = claims.get("client_id", claims.get("azp"))
        return Principal(
            str(claims["sub"]),
            tenant,
            frozenset(scopes),
            client if isinstance(client, str) else None,
        )


async def authorize(request: Request) -> Principal:
    """The one authorization check, run before every route's own dependencies: the
    route's entry in :data:`ROUTE_SCOPES` (none: refused), then the caller's token and
    scopes. Public routes run as an anonymous caller without scopes."""
    guard: Guard = request.app.state.auth
    route = request.scope.get("route")
    needs = ROUTE_SCOPES.get((request.method, getattr(route, "path", "")))
    if needs is None:
        raise _forbidden([Access("(undeclared route)", "r")])
    principal = guard.anonymous if needs == PUBLIC else await guard.principal(request)
    request.state.principal = principal
    missing = principal.missing(needs)
    if missing:
        raise _forbidden(missing)
    return principal


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(settings: Settings) -> None:
    """Refuse auth off on a non-loopback TR_HTTP_HOST unless overridden (reliability.md
    section 3, AuthN; Orthanc 1.13 likewise refuses to start); say so loudly otherwise."""
    if settings.auth_enabled:
        return
    if not is_loopback(settings.http_host):
        if not settings.auth_disabled_on_public_address:
            raise InsecureSettings(
                f"authentication is off (no TR_AUTH_JWKS_URL or TR_AUTH_JWKS_FILE) and "
                f"TR_HTTP_HOST {settings.http_host} is not a loopback address; configure "
                "auth, or set TR_AUTH_DISABLED_ON_PUBLIC_ADDRESS=true to accept the risk"
            )
        logger.warning(
            "INSECURE: authentication is OFF on the public address %s "
            "(TR_AUTH_DISABLED_ON_PUBLIC_ADDRESS); anyone who reaches it acts as tenant %r "
            "with every scope",
            settings.http_host,
            settings.tenant,
        )
        return
    logger.warning(
        "authentication is OFF: every request acts as tenant %r with every scope "
        "(allowed on the loopback address %s only; set TR_AUTH_JWKS_URL to turn it on)",
        settings.tenant,
        settings.http_host,
    )


def capability_security(settings: Settings) -> dict[str, Any]:
    """``CapabilityStatement.rest.security``: how to authenticate, or that auth is off
    (reliability.md section 3: an insecure start is shown in /metadata)."""
    if not settings.auth_enabled:
        return {"cors": False, "description": "INSECURE: authentication is off"}
    return {
        "cors": False,
        "service": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                        "code": "SMART-on-FHIR",
                    }
                ]
            }
        ],
        "description": "OAuth2 bearer JWT (RFC 6750) with SMART system scopes",
    }


def _problem_response(description: str) -> dict[str, object]:
    return {"description": description, "content": {FHIR_JSON: {"schema": {"type": "object"}}}}


def document(app: FastAPI) -> None:
    """Declare the bearer scheme in the app's OpenAPI, and on each protected operation
    the scopes it needs and its 401 / 403 answers."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        schema = plain()
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        if "bearer" in schemes:
            return schema
        schemes["bearer"] = {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "OAuth2 access token (JWT) with SMART system scopes",
        }
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                needs = ROUTE_SCOPES.get((method.upper(), path))
                if not needs:
                    continue
                operation["security"] = [{"bearer": [str(access) for access in needs]}]
                answers = operation.setdefault("responses", {})
                answers.setdefault("401", _problem_response("no valid bearer token"))
                answers.setdefault("403", _problem_response("the token lacks a needed scope"))
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
