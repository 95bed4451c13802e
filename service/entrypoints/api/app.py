"""The ASGI application: ``create_app(settings)`` (contract section 1)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from service import __version__
from service.adapters import db
from service.adapters.writer import Writer
from service.config import Settings
from service.entrypoints import dimse, push_worker, read_process
from service.entrypoints.api import (
    assessments,
    audit,
    auth,
    dicomweb,
    errors,
    fhir,
    health,
    observe,
    ui,
)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; its lifespan migrates the database before serving. Raises
    :class:`auth.InsecureSettings` when auth is off on a public address."""
    settings = settings or Settings()
    auth.check_exposure(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = db.create_engine(settings.database_url, settings.database_lock_timeout)
        db.migrate(engine)
        app.state.engine = engine
        app.state.sr_reader = read_process.for_settings(settings, fhir.fhir_limits(settings))
        writer = app.state.writer = Writer(engine)
        pusher = app.state.push_worker = push_worker.from_settings(settings, engine)
        if pusher is not None:
            pusher.start()
        scp = None
        if settings.dimse_port:  # C-STORE reads in the SR reader too, if it has one
            reader, loop = app.state.sr_reader, asyncio.get_running_loop()
            read = read_process.blocking(reader, loop) if settings.sr_read_process else None
            scp = dimse.start(settings, engine, pusher, read)
        yield
        if scp is not None:
            scp.shutdown()
        writer.close()
        await app.state.sr_reader.close()
        if pusher is not None:
            pusher.stop(timeout=settings.push_timeout)
        engine.dispose()

    app = FastAPI(
        title="tumour-response",
        version=__version__,
        summary="Tumour response assessment (RECIST 1.1) from DICOM SR and FHIR measurements",
        lifespan=lifespan,
        dependencies=[
            Depends(auth.authorize),  # every route, one table (auth.ROUTE_SCOPES)
            Depends(errors.refuse_nul),
        ],
    )
    app.state.settings = settings
    app.state.auth = auth.Guard.from_settings(settings)
    app.include_router(health.router)
    app.include_router(assessments.router)
    app.include_router(dicomweb.router)
    app.include_router(fhir.router)
    app.include_router(ui.router)
    app.include_router(audit.router)
    app.include_router(observe.router)
    errors.install(app)
    auth.document(app)
    app.add_middleware(observe.RequestObserver)  # request id, access line, HTTP metrics
    # Added last, so outermost: every answer, a middleware's own included, is audited.
    app.add_middleware(audit.AuditMiddleware)
    return app
