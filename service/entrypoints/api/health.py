"""Liveness and readiness probes (contract section 2)."""

from __future__ import annotations

from fastapi import APIRouter

from service.adapters.db import open_store
from service.entrypoints.api.deps import EngineDep

router = APIRouter(tags=["operations"])


@router.get("/health")
async def health() -> dict[str, str]:
    """The process runs."""
    return {"status": "ok"}


@router.get(
    "/ready",
    responses={503: {"description": "database unavailable (Retry-After, OperationOutcome)"}},
)
def ready(engine: EngineDep) -> dict[str, str]:
    """The database answers; else 503 ``transient`` with ``Retry-After`` (reliability.md
    section 4), through the same :class:`~service.domain.errors.Unavailable` as any
    request."""
    with open_store(engine) as store:
        store.ping()
    return {"status": "ready"}
