"""In-process API tests: httpx.AsyncClient over ASGITransport, lifespan entered."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI

from service.config import Settings
from service.entrypoints.api.app import create_app
from tests.jwt_issuer import Issuer, serving


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(_env_file=None, database_url=database_url)  # type: ignore[call-arg]


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app with its lifespan entered (httpx's ASGITransport does not run it)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    """A token issuer whose JWKS is served on loopback: keys ``rsa-1`` (RS256) and
    ``ec-1`` (ES256) published, ``rogue`` (RS256) signing but not published."""
    issuer = Issuer()
    issuer.add_key("rsa-1", "RS256")
    issuer.add_key("ec-1", "ES256")
    issuer.add_key("rogue", "RS256", publish=False)
    with serving(issuer):
        yield issuer
