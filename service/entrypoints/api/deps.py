"""FastAPI dependencies: the settings and the database engine of the running app, the
caller and their tenant."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine

from service.adapters.writer import Writer
from service.config import Settings
from service.entrypoints.api.auth import Principal, authorize
from service.entrypoints.api.errors import HttpProblem

# The dependencies are async: FastAPI runs a plain ``def`` dependency in its threadpool,
# a thread hop per request (performance.md section 3.3).


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def get_writer(request: Request) -> Writer:
    """The app's :class:`~service.adapters.writer.Writer`: store writes off the event loop."""
    writer: Writer = request.app.state.writer
    return writer


def public_root(request: Request) -> str:
    """The service root URL that links name: configured, else the request's own."""
    settings: Settings = request.app.state.settings
    return (settings.public_base_url or str(request.base_url)).rstrip("/")


PrincipalDep = Annotated[Principal, Depends(authorize)]  # the app-wide check, cached


async def caller_tenant(principal: PrincipalDep) -> str:
    """The tenant every store call of the request is scoped to (reliability.md section 3)."""
    return principal.tenant


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes *limit* bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HttpProblem(413, "too-long", f"request body over {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HttpProblem(413, "too-long", f"request body over {limit} bytes")
    return bytes(body)


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
WriterDep = Annotated[Writer, Depends(get_writer)]
TenantDep = Annotated[str, Depends(caller_tenant)]
