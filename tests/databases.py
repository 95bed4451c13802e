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
    """The SQL statements *engine*'s connections run meanwhile, whitespace folded, those
    the store runs on the driver too (service.adapters.prepared): seen by SQLite's trace
    callback, or by a psycopg cursor class that notes each query."""
    seen: list[str] = []

    def note(statement: str) -> None:
        seen.append(" ".join(statement.split()))

    if engine.dialect.name == "sqlite":

        def watch(driver: Any) -> None:
            driver.set_trace_callback(note)

        def unwatch(driver: Any) -> None:
            driver.set_trace_callback(None)

    else:
        import psycopg

        class Noting(psycopg.Cursor[Any]):
            def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
                note(str(query))
                return super().execute(query, *args, **kwargs)

            def executemany(self, query: Any, *args: Any, **kwargs: Any) -> Any:
                note(str(query))
                return super().executemany(query, *args, **kwargs)

        def watch(driver: Any) -> None:
            driver.cursor_factory = Noting

        def unwatch(driver: Any) -> None:
            driver.cursor_factory = psycopg.Cursor

    def checked_out(driver: Any, *_rest: object) -> None:
        watch(driver)

    def checked_in(driver: Any, *_rest: object) -> None:
        unwatch(driver)

    sa.event.listen(engine, "checkout", checked_out)
    sa.event.listen(engine, "checkin", checked_in)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "checkout", checked_out)
        sa.event.remove(engine, "checkin", checked_in)
