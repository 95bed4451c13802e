"""Liveness and readiness probes (contract section 2)."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from sqlalchemy.exc import SQLAlchemyError

from service.adapters.db import open_store
from service.entrypoints.api.deps import EngineDep
from service.entrypoints.api.errors import HttpProblem

logger = logging.getLogger(__name__)
router = APIRouter(tags=["operations"])

RETRY_AFTER_SECONDS = "5"


@router.get("/health")
async def health() -> dict[str, str]:
    """The process runs."""
    return {"status": "ok"}


@router.get("/ready", responses={503: {"description": "database unavailable"}})
def ready(engine: EngineDep) -> dict[str, str]:
    """The database answers."""
    try:
        with open_store(engine) as store:
            store.ping()
    except SQLAlchemyError as exc:
        logger.warning("readiness check failed: %s", type(exc).__name__)
        raise HttpProblem(
            503, "transient", "database unavailable", {"Retry-After": RETRY_AFTER_SECONDS}
        ) from exc
    return {"status": "ready"}
