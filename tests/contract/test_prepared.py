"""Statements run on the database driver (service/adapters/prepared.py), on a real
database (SQLite, or PostgreSQL through psycopg): what they store and read is what
SQLAlchemy stores and reads, their errors are SQLAlchemy's, their savepoints nest.
Expanding lists are run by SQLAlchemy on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from service.adapters.db_schema import document, patient
from service.adapters.prepared import Prepared, savepoint

SELECT_DOCUMENTS = sa.select(document).order_by(document.c.id)
INSERT_DOCUMENT = Prepared(sa.insert(document))


@pytest.fixture
def connection(migrated_engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction, with one patient of id 1."""
    with migrated_engine.begin() as found:
        found.execute(sa.insert(patient), {"id": 1, "tenant": "t", "system": "s", "value": "v"})
        yield found


def _document(uid: str, **changes: Any) -> dict[str, Any]:
    return {
        "tenant": "t",
        "patient_id": 1,
        "uid": uid,
        "kind": "dicom-sr",
        "digest": "d" * 64,
        "preliminary": True,
        "imaging_date": date(2024, 2, 29),
        "label": "CT ü",
        "study_uid": "1.2.3",
        "warnings": ["a", {"b": 1.5}],
        "received_at": datetime(2024, 3, 1, 12, 30, 45, 123456, tzinfo=UTC),
        "dicom_context": {"PatientName": "Doe^J", "n": [1, 2]},
        "lesions": b"\x00\x01binary",
        **changes,
    }


def _stored(connection: Connection, sql: str) -> list[tuple[Any, ...]]:
    """What the database holds, as the driver gives it (no type processing)."""
    return [tuple(row) for row in connection.exec_driver_sql(sql).all()]


def test_a_row_is_stored_as_sqlalchemy_stores_it(connection: Connection) -> None:
    connection.execute(sa.insert(document), _document("by-sqlalchemy"))
    INSERT_DOCUMENT.run(connection, _document("prepared"))
    by_sqlalchemy, prepared = _stored(
        connection,
        "SELECT patient_id, kind, digest, preliminary, imaging_date, label, study_uid,"
        " warnings, received_at, setting, dicom_context, lesions FROM document ORDER BY id",
    )
    assert prepared == by_sqlalchemy


def test_rows_are_read_as_sqlalchemy_reads_them(connection: Connection) -> None:
    INSERT_DOCUMENT.many(connection, [_document("one"), _document("two", label=None)])
    prepared = Prepared(SELECT_DOCUMENTS).rows(connection, {})
    expected = connection.execute(SELECT_DOCUMENTS).all()
    assert [tuple(row) for row in prepared] == [tuple(row) for row in expected]
    first = prepared[0]
    assert first.received_at == datetime(2024, 3, 1, 12, 30, 45, 123456, tzinfo=UTC)
    assert (first.imaging_date, first.preliminary) == (date(2024, 2, 29), True)
    assert first.warnings == ["a", {"b": 1.5}] and bytes(first.lesions) == b"\x00\x01binary"


def test_a_parameter_left_out_is_sql_null(connection: Connection) -> None:
    """An INSERT is compiled for the keys given: a JSON column left out is NULL, where a
    None given is JSON's null."""
    left_out = _document("left-out")
    del left_out["dicom_context"]
    INSERT_DOCUMENT.run(connection, left_out)
    INSERT_DOCUMENT.run(connection, _document("given", dicom_context=None))
    stored = _stored(connection, "SELECT dicom_context IS NULL FROM document ORDER BY id")
    assert [bool(null) for (null,) in stored] == [True, False]


def test_expanding_lists_take_their_values(connection: Connection) -> None:
    INSERT_DOCUMENT.many(connection, [_document(uid) for uid in ("a", "b", "c")])
    of_uids = Prepared(
        sa.select(document.c.uid)
        .where(
            document.c.uid.in_(sa.bindparam("uids", expanding=True)),
            document.c.tenant == sa.bindparam("tenant"),
        )
        .order_by(document.c.uid)
    )
    assert [row.uid for row in of_uids.rows(connection, {"uids": ["c", "a"], "tenant": "t"})] == [
        "a",
        "c",
    ]
    assert of_uids.rows(connection, {"uids": ["b"], "tenant": "other"}) == []
    assert of_uids.rows(connection, {"uids": [], "tenant": "t"}) == []


def test_returning_rows_have_their_columns(connection: Connection) -> None:
    inserted = Prepared(sa.insert(document).returning(document.c.id, document.c.uid))
    (row,) = inserted.rows(connection, _document("returned"))
    assert row.uid == "returned"
    assert row.id == connection.execute(sa.select(document.c.id)).scalar_one()


def test_driver_errors_are_raised_as_sqlalchemys(connection: Connection) -> None:
    INSERT_DOCUMENT.run(connection, _document("twice"))
    with pytest.raises(sa.exc.IntegrityError), savepoint(connection):
        INSERT_DOCUMENT.run(connection, _document("twice"))
    assert len(_stored(connection, "SELECT id FROM document")) == 1


def test_savepoints_nest_and_roll_back_their_own_rows(connection: Connection) -> None:
    INSERT_DOCUMENT.run(connection, _document("kept"))
    with savepoint(connection):
        INSERT_DOCUMENT.run(connection, _document("inner kept"))
        with pytest.raises(ZeroDivisionError), savepoint(connection):
            INSERT_DOCUMENT.run(connection, _document("rolled back"))
            raise ZeroDivisionError
        with savepoint(connection):
            INSERT_DOCUMENT.run(connection, _document("released"))
    uids = _stored(connection, "SELECT uid FROM document ORDER BY id")
    assert uids == [("kept",), ("inner kept",), ("released",)]


def test_outside_a_transaction_sqlalchemy_begins_one(migrated_engine: Engine) -> None:
    with migrated_engine.connect() as connection:
        connection.execute(
            sa.insert(patient), {"id": 1, "tenant": "t", "system": "s", "value": "v"}
        )
        connection.commit()
        INSERT_DOCUMENT.run(connection, _document("never committed"))
        assert connection.in_transaction()
        connection.rollback()
        assert _stored(connection, "SELECT uid FROM document") == []


def test_first_and_scalar_give_the_first_row_and_column_or_none(connection: Connection) -> None:
    INSERT_DOCUMENT.many(connection, [_document("b"), _document("a")])
    uids = Prepared(
        sa.select(document.c.uid, document.c.kind)
        .where(document.c.tenant == sa.bindparam("tenant"))
        .order_by(document.c.uid)
    )
    first = uids.first(connection, {"tenant": "t"})
    assert first is not None and (first.uid, first.kind) == ("a", "dicom-sr")
    assert uids.scalar(connection, {"tenant": "t"}) == "a"
    assert uids.first(connection, {"tenant": "other"}) is None
    assert uids.scalar(connection, {"tenant": "other"}) is None


def test_many_rows_gives_the_rows_of_each_execution_in_order(connection: Connection) -> None:
    """On psycopg one executemany returning rows; an execution that inserted nothing (a
    conflict skipped) gives none, and the rows are typed as SQLAlchemy types them."""
    dialect = {"postgresql": postgresql, "sqlite": sqlite}[connection.dialect.name]
    insert = dialect.insert(document).on_conflict_do_nothing()
    statement = Prepared(insert.returning(document.c.uid, document.c.received_at))
    INSERT_DOCUMENT.run(connection, _document("taken"))
    later = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    wanted = [_document("a"), _document("taken"), _document("c", received_at=later)]
    found = statement.many_rows(connection, wanted)
    assert [(row.uid, row.received_at) for row in found] == [
        ("a", wanted[0]["received_at"]),
        ("c", later),
    ]
    assert statement.many_rows(connection, []) == []
    stored = connection.execute(sa.select(document.c.uid).order_by(document.c.id)).scalars()
    assert list(stored) == ["taken", "a", "c"]
