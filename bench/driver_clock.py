"""The database's own time in a request: the wall and CPU time of its driver's calls
(issue 7, "database time"), apart from the store's Python around them.

:func:`attach` makes each new connection of an engine a timed one: SQLAlchemy's
``do_connect`` event opens it as a subclass of the driver's own connection class
(sqlite3, psycopg), whose statements (``execute``, ``executemany`` and the fetches, on
the connection or its cursors; psycopg's ``executemany`` is one pipelined round trip),
commits and rollbacks add their time to a :class:`Clock` (the outermost call only: a
connection's ``execute`` runs a cursor's). A commit's time is kept apart: with
``synchronous=FULL`` (reliability.md section 3) most of a SQLite commit is the wait for
the disk to sync the write-ahead log.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Engine


@dataclass
class Clock:
    """Seconds spent in the driver's calls, wall and CPU (this process's, user + system)."""

    statements_wall: float = 0.0
    statements_cpu: float = 0.0
    commits_wall: float = 0.0
    commits_cpu: float = 0.0
    _depth: int = 0

    def reset(self) -> None:
        for field in fields(self):
            setattr(self, field.name, 0)

    @property
    def wall(self) -> float:
        return self.statements_wall + self.commits_wall

    @property
    def cpu(self) -> float:
        return self.statements_cpu + self.commits_cpu

    def timed(self, call: Callable[..., Any], *args: Any, commit: bool = False) -> Any:
        """``call(*args)``, its time added to the statements' or, with *commit*, to the
        commits' (unless it runs inside another timed call)."""
        self._depth += 1
        wall, cpu = _now()
        try:
            return call(*args)
        finally:
            self._depth -= 1
            if self._depth == 0:
                wall_after, cpu_after = _now()
                wall, cpu = wall_after - wall, cpu_after - cpu
                if commit:
                    self.commits_wall += wall
                    self.commits_cpu += cpu
                else:
                    self.statements_wall += wall
                    self.statements_cpu += cpu


def _now() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def attach(engine: Engine) -> Clock:
    """A :class:`Clock` of every connection *engine* opens from now on (those it holds
    are closed first)."""
    clock = Clock()
    sqlite = engine.dialect.name == "sqlite"

    def connect(_dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        if sqlite:
            connection: Any = sqlite3.connect(*cargs, factory=_SqliteConnection, **cparams)
        else:
            connection = _PsycopgConnection.connect(
                *cargs, cursor_factory=_PsycopgCursor, **cparams
            )
        connection.clock = clock
        return connection

    engine.dispose()
    sa.event.listen(engine, "do_connect", connect)
    return clock


_CURSOR = ("execute", "executemany", "fetchone", "fetchmany", "fetchall")
_ENDS = ("commit", "rollback")


def _timing(base: type[Any], statements: tuple[str, ...], **extra: Any) -> type[Any]:
    """A subclass of *base*, a driver's connection or cursor class, whose methods named
    in *statements* (as statements) and in :data:`_ENDS` (as commits, on a connection)
    add their time to the connection's clock; *extra* added to its namespace."""
    connection = "commit" in dir(base)

    def timed(name: str) -> Callable[..., Any]:
        unbound = getattr(base, name)
        commit = name in _ENDS

        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            clock: Clock = self.clock if connection else self.connection.clock
            return clock.timed(lambda: unbound(self, *args, **kwargs), commit=commit)

        return method

    names = statements + (_ENDS if connection else ())
    namespace = {name: timed(name) for name in names} | extra
    return type(f"Timed{base.__name__}", (base,), namespace)


_SqliteCursor = _timing(sqlite3.Cursor, _CURSOR)
_SqliteConnection = _timing(
    sqlite3.Connection,
    ("execute", "executemany"),
    cursor=lambda self, factory=_SqliteCursor: sqlite3.Connection.cursor(self, factory),
)
_PsycopgCursor = _timing(psycopg.Cursor, _CURSOR)
_PsycopgConnection = _timing(psycopg.Connection, ())
