"""Bearer JWT authentication and SMART scopes on every route (reliability.md sections 4-5),
against a real JWKS served over loopback (tests/jwt_issuer.py)."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, routing
from fastapi.routing import APIRoute

from service.config import Settings
from service.entrypoints.api import auth
from service.entrypoints.api.app import create_app
from tests.fhir_validation import validate_resource
from tests.jwt_issuer import (
    AUDIENCE,
    ISSUER,
    Issuer,
    auth_settings,
    bearer,
    unsigned,
)
from tests.pacs_receivers import closed_port

ROOT = Path(__file__).resolve().parents[2]
SEARCH = "/fhir/Patient?identifier=urn:test|1"
INVALID = 'Bearer error="invalid_token"'


async def _client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@pytest.fixture
async def secured(issuer: Issuer, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(auth_settings(issuer, database_url)):
        yield client


def _refused(answer: httpx.Response, status: int, code: str, challenge: str = INVALID) -> str:
    """Assert a refusal as reliability.md section 4 has it; its diagnostics."""
    assert answer.status_code == status, answer.text
    assert answer.headers["www-authenticate"].startswith(challenge)
    assert answer.headers["content-type"] == "application/fhir+json"
    (issue,) = answer.json()["issue"]
    assert issue["code"] == code, issue
    return str(issue["diagnostics"])


@pytest.mark.anyio
@pytest.mark.parametrize("kid", ["rsa-1", "ec-1"])
async def test_a_good_token_is_accepted(
    secured: httpx.AsyncClient, issuer: Issuer, kid: str
) -> None:
    answer = await secured.get(SEARCH, headers=bearer(issuer.token(kid)))
    assert answer.status_code == 200, answer.text
    assert answer.json()["total"] == 0


@pytest.mark.anyio
async def test_without_a_token_401_login(secured: httpx.AsyncClient, issuer: Issuer) -> None:
    _refused(await secured.get(SEARCH), 401, "login")
    basic = {"Authorization": "Basic dXNlcjpwYXNz"}
    _refused(await secured.get(SEARCH, headers=basic), 401, "login")
    # RFC 6750 2.3: never from the query string (it would end up in access logs)
    _refused(await secured.get(f"{SEARCH}&access_token={issuer.token()}"), 401, "login")


@pytest.mark.anyio
async def test_an_expired_token_401_expired(secured: httpx.AsyncClient, issuer: Issuer) -> None:
    old = int(time.time()) - 3600
    token = issuer.token(iat=old, exp=old + 300)
    _refused(await secured.get(SEARCH, headers=bearer(token)), 401, "expired")


@pytest.mark.anyio
async def test_expiry_within_the_leeway_is_accepted(
    secured: httpx.AsyncClient, issuer: Issuer
) -> None:
    now = int(time.time())
    token = issuer.token(iat=now - 300, exp=now - 30)  # 30 s late, leeway 60 s
    assert (await secured.get(SEARCH, headers=bearer(token))).status_code == 200


def _hand_made(issuer: Issuer) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "mallory",
        "iat": now,
        "exp": now + 300,
        "scope": "system/*.*",
        "tenant": "tenant-a",
    }


def _defects(issuer: Issuer) -> dict[str, str]:
    now = int(time.time())
    pem = issuer.public_pem("rsa-1")
    return {
        "wrong issuer": issuer.token(iss="https://issuer.test/realms/hospital-evil"),
        "issuer prefix": issuer.token(iss="https://issuer.test/realms/hosp"),  # CVE-2024-53861
        "wrong audience": issuer.token(aud="another-service"),
        "no audience": issuer.token(aud=None),
        "no expiry": issuer.token(exp=None),
        "no subject": issuer.token(sub=None),
        "issued in the future": issuer.token(iat=now + 600, exp=now + 900),
        "not yet valid": issuer.token(nbf=now + 600),
        "lifetime too long": issuer.token(lifetime=7200),
        "lifetime too long, as text": issuer.token(iat=str(now), exp=str(now + 7200)),
        "no tenant": issuer.token(tenant=None),
        "tenant not a string": issuer.token(tenant=["a", "b"]),
        "alg none": unsigned(_hand_made(issuer), {"alg": "none", "kid": "rsa-1"}),
        # algorithm confusion: HMAC keyed with the issuer's public key (CVE-2022-29217)
        "HS256 with the public key": unsigned(
            _hand_made(issuer), {"alg": "HS256", "kid": "rsa-1", "typ": "JWT"}, pem
        ),
        "unknown kid": issuer.token("rogue"),
        "kid of another algorithm": issuer.token("rsa-1", headers={"kid": "ec-1"}),
        "bad signature": issuer.token()[:-6] + "AAAAAA",
        "unknown crit header": issuer.token(headers={"crit": ["exp-critical"]}),
        "not an access token": issuer.token(headers={"typ": "dpop+jwt"}),
        "not a JWT": "not.a.jwt",
    }


@pytest.mark.anyio
async def test_every_token_defect_401_unknown(secured: httpx.AsyncClient, issuer: Issuer) -> None:
    for name, token in _defects(issuer).items():
        answer = await secured.get(SEARCH, headers=bearer(token))
        assert answer.status_code == 401, name
        _refused(answer, 401, "unknown")
        assert "tenant-a" not in answer.text


@pytest.mark.anyio
async def test_an_oversized_token_is_refused_unread(
    secured: httpx.AsyncClient, issuer: Issuer
) -> None:
    token = issuer.token(padding="x" * 9000)  # validly signed, over 8 KiB
    text = _refused(await secured.get(SEARCH, headers=bearer(token)), 401, "unknown")
    assert "over 8192 bytes" in text


@pytest.mark.anyio
async def test_unknown_kids_refetch_the_jwks_at_most_once_a_minute(
    secured: httpx.AsyncClient, issuer: Issuer
) -> None:
    before = issuer.fetches
    assert (await secured.get(SEARCH, headers=bearer(issuer.token()))).status_code == 200
    for _ in range(20):
        refused = await secured.get(SEARCH, headers=bearer(issuer.token("rogue")))
        _refused(refused, 401, "unknown")
    assert issuer.fetches - before == 1


@pytest.mark.anyio
async def test_a_rotated_key_is_fetched_once_the_interval_passed(issuer: Issuer) -> None:
    issuer.add_key("rotated", "ES256", publish=False)
    now = [1000.0]
    jwks = auth.Jwks(
        auth.jwks_loader(auth_settings(issuer, NO_DATABASE)),
        min_interval=60,
        max_age=300,
        clock=lambda: now[0],
    )
    await jwks.key("rsa-1", "RS256")
    issuer.published.add("rotated")  # the issuer rotates its keys
    now[0] += 30
    with pytest.raises(auth._Rejected):
        await jwks.key("rotated", "ES256")  # too soon after the last fetch
    assert jwks.fetches == 1
    now[0] += 31
    assert (await jwks.key("rotated", "ES256")).algorithm_name == "ES256"
    assert jwks.fetches == 2
    now[0] += 301
    await jwks.key("rsa-1", "RS256")  # known, but the set is stale: fetched again
    assert jwks.fetches == 3


NO_DATABASE = "sqlite://"  # for settings whose database is never opened
_IDP: dict[str, Any] = {"auth_issuer": ISSUER, "auth_audience": AUDIENCE}


@pytest.mark.anyio
async def test_a_jwks_file_works_as_the_url_does(
    issuer: Issuer, tmp_path: Path, database_url: str
) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(issuer.jwks()))
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=database_url,
        auth_jwks_file=path,
        **_IDP,
    )
    async for client in _client(settings):
        assert (await client.get(SEARCH, headers=bearer(issuer.token()))).status_code == 200
        _refused(await client.get(SEARCH), 401, "login")


@pytest.mark.anyio
async def test_an_unreachable_jwks_answers_503(issuer: Issuer, database_url: str) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=database_url,
        auth_jwks_url=f"http://127.0.0.1:{closed_port()}/jwks.json",
        **_IDP,
    )
    async for client in _client(settings):
        answer = await client.get(SEARCH, headers=bearer(issuer.token()))
        assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
        assert answer.json()["issue"][0]["code"] == "transient"


@pytest.mark.anyio
async def test_a_missing_scope_403_forbidden(secured: httpx.AsyncClient, issuer: Issuer) -> None:
    reader = issuer.token(scope="system/DiagnosticReport.read system/Patient.read")
    assert (await secured.get(SEARCH, headers=bearer(reader))).status_code == 200
    answer = await secured.post(
        "/fhir/Observation",
        content=b"{}",
        headers={**bearer(reader), "Content-Type": "application/fhir+json"},
    )
    challenge = 'Bearer error="insufficient_scope", scope="system/Observation.write"'
    _refused(answer, 403, "forbidden", challenge)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("scope", "allowed"),
    [
        ("system/*.read", {"GET"}),
        ("system/*.rs", {"GET"}),
        ("system/Patient.s", {"GET"}),
        ("system/*.write", set()),  # /fhir/Observation with a bad body: 400, not 403
        ("system/Observation.c", set()),
        ("patient/*.read user/*.*", set()),  # only system scopes count
        ("system/Patient.rs?identifier=urn:test|1", set()),  # narrowed: grants nothing
    ],
)
async def test_scopes_grant_what_they_name(
    secured: httpx.AsyncClient, issuer: Issuer, scope: str, allowed: set[str]
) -> None:
    token = issuer.token(scope=scope)
    search = await secured.get(SEARCH, headers=bearer(token))
    assert search.status_code == (200 if "GET" in allowed else 403), search.text
    write = await secured.post(
        "/fhir/Observation",
        content=b"{}",
        headers={**bearer(token), "Content-Type": "application/fhir+json"},
    )
    may_write = "write" in scope or scope.endswith(".c")
    assert write.status_code == (400 if may_write else 403), write.text


def test_scope_grammar() -> None:
    assert auth.granted(frozenset({"system/Observation.read"})) == {
        ("Observation", "r"),
        ("Observation", "s"),
    }
    assert auth.granted(frozenset({"system/*.cruds"})) == auth.granted(frozenset({"system/*.*"}))
    assert auth.granted(frozenset({"system/Observation.sr", "system/X.", "openid"})) == set()
    everything = auth.Principal("s", "t", frozenset({"system/*.*"}))
    assert (
        everything.missing(tuple(need for needs in auth.ROUTE_SCOPES.values() for need in needs))
        == []
    )


def _route_inventory(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path template) of every route the app serves; asserts each runs
    :func:`auth.authorize` first, or is FastAPI's own documentation."""
    routes: list[tuple[str, str]] = []
    for route in routing.iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute):
            assert route.path in auth.DOCUMENTATION_PATHS, f"{route.path} bypasses authorize"
            continue
        calls = [dependency.call for dependency in route.dependant.dependencies]
        assert calls[:1] == [auth.authorize], f"{route.path} does not run authorize first"
        # authorize looks the route up by the path of the route it is given
        assert route.original_route.path == route.path, f"{route.path}: included with a prefix"
        routes.extend((method, route.path) for method in sorted(route.methods or ()))
    return routes


def test_every_route_has_the_authorization_dependency_and_a_scope_entry() -> None:
    """Fails for any route added without declaring what it needs (reliability.md
    section 3, AuthZ: the route-inventory test)."""
    app = create_app(Settings(_env_file=None))  # type: ignore[call-arg]
    undeclared = [key for key in _route_inventory(app) if key not in auth.ROUTE_SCOPES]
    assert not undeclared, f"declare these routes in auth.ROUTE_SCOPES: {undeclared}"


def _sample(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


@pytest.mark.anyio
async def test_every_non_public_route_401_without_a_token(
    secured: httpx.AsyncClient, issuer: Issuer
) -> None:
    app = create_app(Settings(_env_file=None))  # type: ignore[call-arg]
    protected = [key for key in _route_inventory(app) if auth.ROUTE_SCOPES[key]]
    assert len(protected) >= 15
    for method, path in protected:
        answer = await secured.request(method, _sample(path), content=b"{}")
        assert answer.status_code == 401, (method, path, answer.text)
        _refused(answer, 401, "login")
    for method, path in _route_inventory(app):
        if not auth.ROUTE_SCOPES[(method, path)]:
            assert (await secured.request(method, path)).status_code == 200, path
    assert (await secured.get("/openapi.json")).status_code == 200


@pytest.mark.anyio
async def test_a_refused_post_stores_nothing(secured: httpx.AsyncClient, issuer: Issuer) -> None:
    body = (ROOT / "examples" / "baseline.dcm").read_bytes()
    dicom = {"Content-Type": "application/dicom"}
    reader = bearer(issuer.token(scope="system/*.read"))
    assert (await secured.post("/assessments", content=body, headers=dicom)).status_code == 401
    refused = await secured.post("/assessments", content=body, headers={**dicom, **reader})
    assert refused.status_code == 403
    found = await secured.get("/fhir/DiagnosticReport", headers=reader)
    assert found.json()["total"] == 0
    writer = bearer(issuer.token(scope="system/Observation.c system/DiagnosticReport.r"))
    stored = await secured.post("/assessments", content=body, headers={**dicom, **writer})
    assert stored.status_code == 200, stored.text
    assert (await secured.get("/fhir/DiagnosticReport", headers=reader)).json()["total"] == 1


def test_the_openapi_document_declares_the_bearer_scheme_and_scopes() -> None:
    document = create_app(Settings(_env_file=None)).openapi()  # type: ignore[call-arg]
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    operation = document["paths"]["/fhir/Observation"]["post"]
    assert operation["security"] == [{"bearer": ["system/Observation.write"]}]
    assert {"401", "403"} <= operation["responses"].keys()
    assert "security" not in document["paths"]["/health"]["get"]


@pytest.mark.anyio
async def test_metadata_says_how_to_authenticate(
    secured: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    on = (await secured.get("/fhir/metadata")).json()
    validate_resource(on)
    (service,) = on["rest"][0]["security"]["service"]
    assert service["coding"][0]["code"] == "SMART-on-FHIR"
    off = (await client.get("/fhir/metadata")).json()
    validate_resource(off)
    assert off["rest"][0]["security"]["description"] == "INSECURE: authentication is off"


# -- auth off: loopback only (reliability.md section 3, AuthN) --------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_auth_off_on_loopback_starts_and_warns(host: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        create_app(Settings(_env_file=None, http_host=host))  # type: ignore[call-arg]
    assert "authentication is OFF" in caplog.text


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "tumour-response.example"])
def test_auth_off_on_a_public_address_refuses_to_start(host: str) -> None:
    with pytest.raises(auth.InsecureSettings, match="not a loopback address"):
        create_app(Settings(_env_file=None, http_host=host))  # type: ignore[call-arg]


def test_the_explicit_override_starts_with_an_insecure_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, http_host="0.0.0.0", auth_disabled_on_public_address=True
    )
    with caplog.at_level(logging.WARNING):
        create_app(settings)
    assert "INSECURE: authentication is OFF on the public address 0.0.0.0" in caplog.text


def test_auth_on_may_bind_a_public_address(issuer: Issuer) -> None:
    create_app(auth_settings(issuer, NO_DATABASE, http_host="0.0.0.0"))


def test_serve_refuses_a_public_address_without_auth(tmp_path: Path) -> None:
    port = closed_port()
    done = subprocess.run(
        [sys.executable, "-m", "service", "serve", "--host", "0.0.0.0", "--port", str(port)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "TR_DIMSE_PORT": "0"},
    )
    assert done.returncode == 1, done.stderr
    assert "not a loopback address" in done.stderr
    assert not (tmp_path / "data").exists()  # refused before touching the database


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"auth_algorithms": "RS256,HS256"}, "refused algorithm"),
        ({"auth_algorithms": "none"}, "refused algorithm"),
        ({"auth_jwks_url": "https://idp/jwks"}, "TR_AUTH_ISSUER and TR_AUTH_AUDIENCE"),
        ({"auth_jwks_url": "file:///etc/passwd", **_IDP}, "should match pattern"),
    ],
)
def test_unsafe_auth_settings_are_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings(_env_file=None, **settings)  # type: ignore[call-arg]
