"""The database every test runs on: SQLite by default, PostgreSQL on request.

``TEST_DATABASE=postgresql`` (not ``TR_``-prefixed: tests/conftest.py removes those)
runs the suite on the PostgreSQL server at ``TEST_POSTGRES_URL`` (default: local trust
auth, database ``test``), each test in a fresh schema of its own that is dropped
afterwards; when that server is unreachable those runs skip, saying so. ``make pytest``
runs the suite once on each (issue 6; README "Tests").
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bench.postgres import POSTGRES_URL, fresh_schema, unreachable

__all__ = ["POSTGRES_URL", "backend", "fresh_database", "statements_run"]


def backend() -> str:
    """``sqlite`` or ``postgresql``: the database of this test run."""
    chosen = os.environ.get("TEST_DATABASE", "sqlite").lower()
    if chosen not in ("sqlite", "postgresql"):
        raise pytest.UsageError(f"TEST_DATABASE={chosen!r}: use sqlite or postgresql")
    return chosen


@cache
def _postgres_problem() -> str | None:
    """Why PostgreSQL cannot be used, None when it answers (probed once per run)."""
    return unreachable()


@contextmanager
def fresh_database(directory: Path) -> Iterator[str]:
    """The SQLAlchemy URL of an empty database of this run's backend: a SQLite file in
    *directory*, or a PostgreSQL schema of its own, dropped afterwards."""
    if backend() == "sqlite":
        yield f"sqlite:///{directory / 'store.db'}"
        return
    problem = _postgres_problem()
    if problem is not None:
        pytest.skip(problem)
    with fresh_schema() as url:
        yield url


@contextmanager
def statements_run(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements *engine*'s connections run meanwhile, whitespace folded: on
    SQLite those the store runs on the driver too (service.adapters.prepared), seen by
    the driver's trace callback; elsewhere SQLAlchemy's own."""
    seen: list[str] = []

    def note(statement: str) -> None:
        seen.append(" ".join(statement.split()))

    if engine.dialect.name != "sqlite":

        def executed(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
            note(statement)

        sa.event.listen(engine, "before_cursor_execute", executed)
        try:
            yield seen
        finally:
            sa.event.remove(engine, "before_cursor_execute", executed)
        return

    def traced(driver: Any, *_rest: object) -> None:
        driver.set_trace_callback(note)

    def untraced(driver: Any, *_rest: object) -> None:
        driver.set_trace_callback(None)

    sa.event.listen(engine, "checkout", traced)
    sa.event.listen(engine, "checkin", untraced)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "checkout", traced)
        sa.event.remove(engine, "checkin", untraced)
