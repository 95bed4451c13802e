"""The app with its SRs read in the companion process and in the server, side by side
(TR_SR_READ_PROCESS; service/entrypoints/read_process.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from service.config import Settings
from service.entrypoints.api.app import create_app

Answers = list[tuple[int, Any]]


async def with_each_reader(
    settings: Settings, tmp_path: Path, send: Callable[[httpx.AsyncClient], Awaitable[Answers]]
) -> dict[bool, Answers]:
    """What *send* gets from the app whose SRs are read in the companion process (True;
    on the database of *settings*) and from the app that reads them itself (False; on a
    SQLite database of its own). Each app's reader is checked to be the one asked for,
    and to end with the app."""
    answers: dict[bool, Answers] = {}
    for in_companion in (True, False):
        database = settings.database_url if in_companion else f"sqlite:///{tmp_path}/other.db"
        update = {"sr_read_process": in_companion, "database_url": database}
        app = create_app(settings.model_copy(update=update))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                answers[in_companion] = await send(client)
            reader = app.state.sr_reader
            assert (getattr(reader, "pid", None) is not None) == in_companion
        assert getattr(reader, "pid", None) is None
    return answers


def without_times(value: Any) -> Any:
    """*value* without the instants it was stored or issued at."""
    if isinstance(value, dict):
        return {
            key: without_times(item)
            for key, item in value.items()
            if key not in ("issued", "lastUpdated", "timestamp")
        }
    if isinstance(value, list):
        return [without_times(item) for item in value]
    return value
