"""A PostgreSQL schema of its own for one measurement or test, dropped afterwards.

The server is ``TEST_POSTGRES_URL`` (default: this machine's, trust auth, database
``test``); the tests' PostgreSQL runs (tests/databases.py) use the same helpers.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def unreachable(url: str = POSTGRES_URL) -> str | None:
    """Why the server at *url* cannot be used, None when it answers."""
    probe = sa.create_engine(url)
    try:
        with probe.connect():
            return None
    except OperationalError as error:
        return f"PostgreSQL unreachable at {make_url(url)!r}: {error.orig}"
    finally:
        probe.dispose()


@contextmanager
def fresh_schema(url: str = POSTGRES_URL) -> Iterator[str]:
    """The SQLAlchemy URL of a new, empty schema on the server at *url* (its
    ``search_path``), dropped with everything in it on leaving."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url)
    try:
        with admin.begin() as connection:
            connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
        in_schema = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield in_schema.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql("SET LOCAL lock_timeout = '10s'")  # never hang
            connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.dispose()
