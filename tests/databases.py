"""The database every test runs on: SQLite by default, PostgreSQL on request.

``TEST_DATABASE=postgresql`` (not ``TR_``-prefixed: tests/conftest.py removes those)
runs the suite on the PostgreSQL server at ``TEST_POSTGRES_URL`` (default: local trust
auth, database ``test``), each test in a fresh schema of its own that is dropped
afterwards; when that server is unreachable those runs skip, saying so. ``make pytest``
runs the suite once on each (issue 6; README "Tests").
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def backend() -> str:
    """``sqlite`` or ``postgresql``: the database of this test run."""
    chosen = os.environ.get("TEST_DATABASE", "sqlite").lower()
    if chosen not in ("sqlite", "postgresql"):
        raise pytest.UsageError(f"TEST_DATABASE={chosen!r}: use sqlite or postgresql")
    return chosen


@cache
def _postgres_problem() -> str | None:
    """Why PostgreSQL cannot be used, None when it answers (probed once per run)."""
    probe = sa.create_engine(POSTGRES_URL)
    try:
        with probe.connect():
            return None
    except OperationalError as error:
        return f"PostgreSQL unreachable at {make_url(POSTGRES_URL)!r}: {error.orig}"
    finally:
        probe.dispose()


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
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL)
    try:
        with admin.begin() as connection:
            connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
        url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql("SET LOCAL lock_timeout = '10s'")  # never hang
            connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.dispose()
