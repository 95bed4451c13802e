"""The store's statements run on the database driver itself, with SQLAlchemy's own type
processing (issue 7).

SQLAlchemy spends 45-180 us of Python on each execution of a cached Core statement
(execution context, parameter construction, result set-up, events) against 10-230 us in
SQLite itself: ~1.1 ms of an SR request's ~6.5 ms of CPU for its 13 statements on
SQLite, ~1.4 ms of ~8 on PostgreSQL (``bench.inprocess``, per statement, 2026-12-04).
:class:`Prepared` compiles a Core statement once per dialect, keeps the bind and result
processors of its types (those SQLAlchemy applies: a value is stored and read exactly as
through it) and runs it on the DBAPI connection (sqlite3, psycopg) under the SQLAlchemy
:class:`~sqlalchemy.engine.Connection`, inside the transaction that connection began. A
driver error is raised as the :class:`~sqlalchemy.exc.DBAPIError` SQLAlchemy would raise
(``db.transient`` reads it), a lost connection invalidated first as SQLAlchemy does.

A connection outside a transaction (SQLAlchemy begins one itself there), and on
PostgreSQL a statement with an expanding ``IN`` list, are left to SQLAlchemy.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import count
from typing import Any, Final

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Insert

Params = Mapping[str, Any]
_Processor = Callable[[Any], Any] | None
_EXPANDED: Final = "__[POSTCOMPILE_{}]"
_SAVEPOINTS = count(1)  # names of the savepoints this module takes


@dataclass(frozen=True, slots=True)
class _Plan:
    """A statement compiled for one dialect: SQL text split at its expanding ``IN`` lists,
    the parameters in text order with their processors (and the values the statement
    holds itself), the result columns and their processors."""

    pieces: tuple[str, ...]
    positional: bool  # qmark (SQLite); else pyformat, parameters by name (psycopg)
    binds: tuple[tuple[str, _Processor], ...]
    defaults: dict[str, Any]
    expanding: tuple[str, ...]
    row: Callable[..., tuple[Any, ...]]
    results: tuple[_Processor, ...]

    def sql(self, params: Params) -> str:
        """The SQL text, each expanding list with as many ``?`` as it has values."""
        if not self.expanding:
            return self.pieces[0]
        marks = (", ".join("?" * len(params[name])) for name in self.expanding)
        return "".join(piece + next(marks, "") for piece in self.pieces)

    def values(self, params: Params) -> list[Any] | dict[str, Any]:
        """The driver's parameters for *params*, processed as SQLAlchemy does."""
        if self.defaults:
            params = {**self.defaults, **params}
        if not self.positional:
            return {
                name: params[name] if process is None else process(params[name])
                for name, process in self.binds
            }
        if not self.expanding:
            return [
                params[name] if process is None else process(params[name])
                for name, process in self.binds
            ]
        found: list[Any] = []
        for name, process in self.binds:
            value = params[name]
            if name in self.expanding:
                found.extend(value if process is None else map(process, value))
            else:
                found.append(value if process is None else process(value))
        return found

    def rows(self, fetched: list[Any]) -> list[Any]:
        """The fetched rows, each value processed as SQLAlchemy does, as named tuples."""
        if not any(self.results):
            return [self.row(*values) for values in fetched]
        results = self.results
        return [
            self.row(
                *(
                    value if process is None else process(value)
                    for process, value in zip(results, values, strict=True)
                )
            )
            for values in fetched
        ]


class Prepared:
    """*statement*, a Core statement, run on the database driver (or by SQLAlchemy where
    the module docstring says). An INSERT or UPDATE is compiled, as SQLAlchemy does, for
    the keys its parameters give (the columns it sets): once per dialect and set of
    keys."""

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._dml = bool(getattr(statement, "is_dml", False))
        self._plans: dict[tuple[str, ...], _Plan] = {}

    def rows(self, connection: Connection, params: Params) -> list[Any]:
        """Execute with *params*; the rows, with the columns as attributes."""
        plan = self._direct(connection, params)
        if plan is None:
            return list(connection.execute(self.statement, params).all())
        sql = plan.sql(params)
        values = plan.values(params)
        with _raised_as_sqlalchemy(connection, sql, values):
            cursor = _driver(connection).execute(sql, values)
            return plan.rows(cursor.fetchall() if cursor.description is not None else [])

    def first(self, connection: Connection, params: Params) -> Any | None:
        """The first of :meth:`rows`, or None when there is none."""
        found = self.rows(connection, params)
        return found[0] if found else None

    def scalar(self, connection: Connection, params: Params) -> Any | None:
        """The first column of :meth:`first`, or None when there is no row."""
        row = self.first(connection, params)
        return None if row is None else row[0]

    def run(self, connection: Connection, params: Params) -> None:
        """Execute with *params* a statement that returns no rows."""
        plan = self._direct(connection, params)
        if plan is None:
            connection.execute(self.statement, params)
            return
        sql = plan.sql(params)
        values = plan.values(params)
        with _raised_as_sqlalchemy(connection, sql, values):
            _driver(connection).execute(sql, values)

    def many(self, connection: Connection, rows: Sequence[Params]) -> None:
        """Execute once per row of *rows*, which all have the keys of the first (no
        expanding lists, no rows returned)."""
        if not rows:
            return
        plan = self._direct(connection, rows[0])
        if plan is None or plan.expanding:
            connection.execute(self.statement, list(rows))
            return
        sql = plan.pieces[0]
        values = [plan.values(row) for row in rows]
        with _raised_as_sqlalchemy(connection, sql, values):
            _driver(connection).cursor().executemany(sql, values)

    def many_rows(self, connection: Connection, rows: Sequence[Params]) -> list[Any]:
        """:meth:`many` of a statement that returns rows: the rows of every execution, in
        order. On psycopg one ``executemany`` in a pipeline (one round trip, a short
        statement whose parsing psycopg caches), where SQLAlchemy renders one INSERT of
        all the rows, parsed by psycopg at each call; elsewhere SQLAlchemy runs it."""
        if not rows:
            return []
        plan = self._direct(connection, rows[0])
        if plan is None or plan.expanding or connection.dialect.driver != "psycopg":
            return list(connection.execute(self.statement, list(rows)).all())
        sql = plan.pieces[0]
        values = [plan.values(row) for row in rows]
        fetched: list[Any] = []
        with _raised_as_sqlalchemy(connection, sql, values):
            cursor = _driver(connection).cursor()
            cursor.executemany(sql, values, returning=True)
            fetched.extend(cursor.fetchall())
            while cursor.nextset():
                fetched.extend(cursor.fetchall())
        return plan.rows(fetched)

    def _direct(self, connection: Connection, params: Params) -> _Plan | None:
        """The plan for *connection*'s dialect, or None where SQLAlchemy runs the
        statement: no transaction begun, an empty expanding list (SQLAlchemy renders
        those as an always-false expression), any expanding list bound by name."""
        if not connection.in_transaction():
            return None
        dialect = connection.dialect
        keys = (dialect.name, *params) if self._dml else (dialect.name,)
        plan = self._plans.get(keys)
        if plan is None:
            columns = list(keys[1:]) if self._dml else None
            plan = self._plans[keys] = _compiled(self.statement, columns, dialect)
        if plan.expanding and (
            not plan.positional or any(not params.get(name) for name in plan.expanding)
        ):
            return None
        return plan


@contextmanager
def savepoint(connection: Connection) -> Iterator[None]:
    """A savepoint, released on success and rolled back on any exception; taken on the
    driver (~1 us on SQLite against ~55 us for ``begin_nested``) in a transaction begun,
    else by SQLAlchemy."""
    if not connection.in_transaction():
        with connection.begin_nested():
            yield
        return
    name = f"tr_savepoint_{next(_SAVEPOINTS)}"
    _statement(connection, f"SAVEPOINT {name}")
    try:
        yield
    except BaseException:
        _statement(connection, f"ROLLBACK TO SAVEPOINT {name}")
        _statement(connection, f"RELEASE SAVEPOINT {name}")
        raise
    _statement(connection, f"RELEASE SAVEPOINT {name}")


def _statement(connection: Connection, sql: str) -> None:
    with _raised_as_sqlalchemy(connection, sql, ()):
        _driver(connection).execute(sql)


def _driver(connection: Connection) -> Any:
    """The DBAPI connection (sqlite3's, psycopg's) under *connection*."""
    return connection.connection.driver_connection


@contextmanager
def _raised_as_sqlalchemy(connection: Connection, sql: str, values: Any) -> Iterator[None]:
    """A driver error raised as the :class:`DBAPIError` subclass SQLAlchemy raises; when
    it says the connection is lost, the connection is invalidated first (the pool then
    replaces it), as SQLAlchemy does."""
    dialect = connection.dialect
    driver_error = dialect.loaded_dbapi.Error
    try:
        yield
    except driver_error as error:
        lost = dialect.is_disconnect(error, _driver(connection), None)
        if lost:
            connection.invalidate(error)
        raise DBAPIError.instance(
            sql,
            values,
            error,
            driver_error,
            hide_parameters=True,
            connection_invalidated=lost,
            dialect=dialect,
        ) from error


def _compiled(statement: Executable, columns: list[str] | None, dialect: Dialect) -> _Plan:
    exported = list(getattr(statement, "exported_columns", ()))
    clause: ClauseElement
    if isinstance(statement, Insert) and not exported:
        clause = statement.inline()  # no RETURNING of the key added (PostgreSQL)
    else:
        assert isinstance(statement, ClauseElement)
        clause = statement
    compiled = clause.compile(dialect=dialect, column_keys=columns)
    assert isinstance(compiled, SQLCompiler)
    positional = compiled.positiontup is not None
    if not positional and dialect.paramstyle != "pyformat":
        raise ValueError(f"parameter style {dialect.paramstyle} is not handled")
    pieces = [compiled.string]
    binds: list[tuple[str, _Processor]] = []
    defaults: dict[str, Any] = {}
    expanding: list[str] = []
    for name in compiled.positiontup or compiled.binds:
        parameter = compiled.binds[name]
        binds.append((name, parameter.type.dialect_impl(dialect).bind_processor(dialect)))
        if not parameter.required:
            defaults[name] = parameter.effective_value
        if parameter.expanding:
            expanding.append(name)
            head, _marker, tail = pieces.pop().partition(_EXPANDED.format(name))
            pieces += [head, tail]
    fields = [column.key for column in exported]
    results = tuple(
        column.type.dialect_impl(dialect).result_processor(dialect, None) for column in exported
    )
    return _Plan(
        pieces=tuple(pieces),
        positional=positional,
        binds=tuple(binds),
        defaults=defaults,
        expanding=tuple(expanding),
        row=namedtuple("Row", fields, rename=True),
        results=results,
    )
