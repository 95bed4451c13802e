"""The store's statements run on the SQLite driver itself, with SQLAlchemy's own type
processing (issue 7).

SQLAlchemy spends 45-180 us of Python on each execution of a cached Core statement
(execution context, parameter construction, result set-up, events) against 10-230 us in
SQLite itself: ~1.1 ms of an SR request's ~6.5 ms of CPU for its 13 statements
(``bench.inprocess``, per statement, 2026-12-04). :class:`Prepared` compiles a Core
statement once with the SQLite dialect, keeps the bind and result processors of its
types (those SQLAlchemy applies: a value is stored and read exactly as through it) and
runs it on the DBAPI connection under the SQLAlchemy :class:`~sqlalchemy.engine.Connection`,
inside the transaction that connection began. A driver error is raised as the
:class:`~sqlalchemy.exc.DBAPIError` SQLAlchemy would raise (``db.transient`` reads it).

Any other dialect, and a connection outside a transaction (SQLAlchemy begins one
itself there), are left to SQLAlchemy: PostgreSQL's costs are its round trips, and its
driver errors must also invalidate a lost connection, which SQLAlchemy does.
"""

from __future__ import annotations

import sqlite3
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

Params = Mapping[str, Any]
_Processor = Callable[[Any], Any] | None
_EXPANDED: Final = "__[POSTCOMPILE_{}]"
_SAVEPOINTS = count(1)  # names of the savepoints this module takes


@dataclass(frozen=True, slots=True)
class _Plan:
    """A statement compiled for SQLite: SQL text split at its expanding ``IN`` lists,
    the parameters in text order with their processors (and the values the statement
    holds itself), the result columns and their processors."""

    pieces: tuple[str, ...]
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

    def values(self, params: Params) -> list[Any]:
        """The driver's parameters for *params*, processed as SQLAlchemy does."""
        if self.defaults:
            params = {**self.defaults, **params}
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
    """*statement*, a Core statement, run on the SQLite driver or by SQLAlchemy. An
    INSERT or UPDATE is compiled, as SQLAlchemy does, for the keys its parameters
    give (the columns it sets): once per set of keys."""

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
            return plan.rows(_driver(connection).execute(sql, values).fetchall())

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
            _driver(connection).executemany(sql, values)

    def _direct(self, connection: Connection, params: Params) -> _Plan | None:
        """The SQLite plan, or None where SQLAlchemy runs the statement: another
        dialect, no transaction begun, an empty expanding list (SQLAlchemy renders
        those as an always-false expression)."""
        if connection.dialect.name != "sqlite" or not connection.in_transaction():
            return None
        keys = tuple(params) if self._dml else ()
        plan = self._plans.get(keys)
        if plan is None:
            columns = list(keys) if self._dml else None
            plan = self._plans[keys] = _compiled(self.statement, columns, connection.dialect)
        if any(not params.get(name) for name in plan.expanding):
            return None
        return plan


@contextmanager
def savepoint(connection: Connection) -> Iterator[None]:
    """A savepoint, released on success and rolled back on any exception; taken on the
    SQLite driver (~1 us against ~55 us for ``begin_nested``), else by SQLAlchemy."""
    if connection.dialect.name != "sqlite" or not connection.in_transaction():
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


def _driver(connection: Connection) -> sqlite3.Connection:
    driver = connection.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    return driver


@contextmanager
def _raised_as_sqlalchemy(connection: Connection, sql: str, values: Any) -> Iterator[None]:
    """A driver error raised as the :class:`DBAPIError` subclass SQLAlchemy raises."""
    try:
        yield
    except sqlite3.Error as error:
        raise DBAPIError.instance(
            sql, values, error, sqlite3.Error, hide_parameters=True, dialect=connection.dialect
        ) from error


def _compiled(statement: Executable, columns: list[str] | None, dialect: Dialect) -> _Plan:
    assert isinstance(statement, ClauseElement)
    compiled = statement.compile(dialect=dialect, column_keys=columns)
    assert isinstance(compiled, SQLCompiler)
    if compiled.positiontup is None:
        raise ValueError("the SQLite dialect is expected to bind by position")
    pieces = [compiled.string]
    binds: list[tuple[str, _Processor]] = []
    defaults: dict[str, Any] = {}
    expanding: list[str] = []
    for name in compiled.positiontup:
        parameter = compiled.binds[name]
        binds.append((name, parameter.type.dialect_impl(dialect).bind_processor(dialect)))
        if not parameter.required:
            defaults[name] = parameter.effective_value
        if parameter.expanding:
            expanding.append(name)
            head, _marker, tail = pieces.pop().partition(_EXPANDED.format(name))
            pieces += [head, tail]
    exported = list(getattr(statement, "exported_columns", ()))
    fields = [column.key for column in exported]
    results = tuple(
        column.type.dialect_impl(dialect).result_processor(dialect, None) for column in exported
    )
    return _Plan(
        pieces=tuple(pieces),
        binds=tuple(binds),
        defaults=defaults,
        expanding=tuple(expanding),
        row=namedtuple("Row", fields, rename=True),
        results=results,
    )
