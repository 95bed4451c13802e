"""The storage edge under faults (reliability.md sections 3-5, X02/X06/X07): driver
errors that mean "not now" become :class:`Unavailable`, a serialization failure or
deadlock is retried 3 times in all, and the engine recovers without a restart.

Real databases only: a second SQLite connection holding the write lock, PostgreSQL
backends terminated by ``pg_terminate_backend``, a deadlock PostgreSQL detects itself.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from service.adapters import db
from service.adapters.db_schema import patient
from service.domain.errors import Unavailable
from tests.contract.test_db import add, rich_report, row_counts
from tests.databases import POSTGRES_URL, backend

LOCK_TIMEOUT = 0.3


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Engine]:
    """A SQLite file whose connections wait only briefly for the write lock."""
    engine = db.create_engine(f"sqlite:///{tmp_path / 'store.db'}", lock_timeout=LOCK_TIMEOUT)
    db.migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_db(migrated_engine: Engine) -> Engine:
    """The PostgreSQL schema of a ``TEST_DATABASE=postgresql`` run (``make pytest``)."""
    if backend() != "postgresql":
        pytest.skip("PostgreSQL only: run with TEST_DATABASE=postgresql (make pytest does)")
    return migrated_engine


def _raw(store: db.Store) -> Connection:
    """The store's connection, for SQL a test needs and the store has no method for."""
    connection: Connection = store._connection
    return connection


@pytest.mark.sqlite_only("a second connection holding SQLite's write lock")
def test_a_write_lock_held_beyond_the_busy_timeout_is_unavailable_then_recovers(
    sqlite_db: Engine, tmp_path: Path
) -> None:
    holder = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing, for longer than we wait
    try:
        with pytest.raises(Unavailable) as caught:
            add(sqlite_db, rich_report(), "d1")
        assert caught.value.retry_after_seconds > 0
        assert isinstance(caught.value.__cause__, OperationalError)
    finally:
        holder.rollback()
        holder.close()
    assert row_counts(sqlite_db)["document"] == 0  # nothing half-written
    assert add(sqlite_db, rich_report(), "d1") is True  # the same engine, no restart


@pytest.mark.sqlite_only("SQLite reports a missing table as OperationalError")
def test_errors_that_are_not_transient_are_not_unavailable(sqlite_db: Engine) -> None:
    with pytest.raises(OperationalError), db.open_store(sqlite_db) as store:
        _raw(store).exec_driver_sql("SELECT * FROM no_such_table")
    with pytest.raises(IntegrityError), db.open_store(sqlite_db) as store:
        row = {"tenant": "t", "system": "s", "value": "v"}
        _raw(store).execute(sa.insert(patient), [row, row])


def test_a_terminated_connection_is_unavailable_then_the_pool_recovers(pg_db: Engine) -> None:
    admin = sa.create_engine(POSTGRES_URL)
    with pytest.raises(Unavailable), db.open_store(pg_db) as store:
        pid = _raw(store).exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        with admin.begin() as connection:
            connection.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
        store.add_report(rich_report(), "d1")
    admin.dispose()
    assert row_counts(pg_db)["document"] == 0
    assert add(pg_db, rich_report(), "d1") is True


def test_a_deadlock_is_retried_and_both_transactions_commit(pg_db: Engine) -> None:
    with db.open_store(pg_db) as store:
        ids = [
            _raw(store)
            .execute(
                sa.insert(patient).returning(patient.c.id),
                {"tenant": "t", "system": "s", "value": value},
            )
            .scalar_one()
            for value in ("a", "b")
        ]
    barrier = threading.Barrier(2)
    attempts: list[int] = []

    def lock_in_order(order: list[int]) -> int:
        def work(store: db.Store) -> int:
            attempts.append(order[0])
            touch = sa.update(patient).values(value=patient.c.value + "!")
            _raw(store).execute(touch.where(patient.c.id == order[0]))
            if len(attempts) <= 2:  # first attempts: each holds one row, wants the other
                barrier.wait(timeout=10)
            _raw(store).execute(touch.where(patient.c.id == order[1]))
            return order[0]

        return db.transaction(pg_db, work)

    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(lock_in_order, [ids, ids[::-1]]))
    assert done == ids
    assert len(attempts) == 3  # PostgreSQL aborted one of them once (40P01), it ran again
    with pg_db.connect() as connection:
        values = connection.execute(sa.select(patient.c.value).order_by(patient.c.id)).scalars()
        assert list(values) == ["a!!", "b!!"]


def test_serialization_failures_are_retried_three_times_in_all_then_unavailable(
    pg_db: Engine,
) -> None:
    attempts: list[int] = []

    def work(store: db.Store) -> None:
        attempts.append(1)
        _raw(store).exec_driver_sql(
            "DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = 'serialization_failure'; END $$"
        )

    with pytest.raises(Unavailable):
        db.transaction(pg_db, work)
    assert len(attempts) == db.ATTEMPTS == 3
