"""Store transactions off the event loop, committed together on SQLite (issue 7).

The HTTP handlers are ``async`` and parse inline (performance.md section 0.5); what they
must not do inline is wait for the database: a ``COMMIT`` of ``synchronous=FULL`` waits
for an fsync, and the event loop, blocked meanwhile, can neither read the next request
nor answer the last one.

:class:`Writer` runs each unit of work (``work(store)``, as :func:`.db.transaction`
takes it) in a thread of its own and lets the caller ``await`` the result:

* **SQLite** has one writer at a time, so one thread serves every unit of work. The
  units queued while a transaction commits are run together in the next one (group
  commit): one fsync for several requests, and each result is returned only once the
  transaction holding it has committed, so an acknowledged write is never lost
  (reliability.md section 3). A unit that raises fails alone: the transaction is
  rolled back and its units run again, each in a ``SAVEPOINT`` of its own, the one
  that raises rolled back to its savepoint and given its exception. Units seldom
  raise (input is refused before its unit), so they first run without savepoints,
  two statements fewer each (issue 7); a unit may run twice, as
  :func:`.db.transaction`'s retries run it (``services.fresh_attempt``). A database
  that fails (transient errors, a failed ``COMMIT``) fails every unit of the
  transaction with :class:`~service.domain.errors.Unavailable`, nothing of them
  stored.
* **PostgreSQL** takes concurrent writers: a few threads each run
  :func:`.db.transaction` (its retries included) for one unit of work.

Each unit runs in the context (:mod:`contextvars`) of the caller that submitted it, so
the request's audit trail is saved with its data (:func:`.db.open_store`'s rule, here
per savepoint) and its log lines keep the request id.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, TimeoutError as PoolTimeout

from service.adapters import audit
from service.adapters.db import Store, answering, transaction, transient
from service.adapters.prepared import savepoint

T = TypeVar("T")
logger = logging.getLogger(__name__)

MAX_UNITS_PER_TRANSACTION: Final = 32  # bounds what one failed COMMIT takes with it
POSTGRESQL_THREADS: Final = 4  # within SQLAlchemy's default pool of 5


@dataclass(slots=True)
class _Unit:
    """One unit of work with the context it runs in and the future it resolves."""

    work: Callable[[Store], Any]
    context: contextvars.Context
    future: Future[Any] = field(default_factory=Future)
    result: Any = None
    error: BaseException | None = None
    committed: Callable[[], None] | None = None


class Writer:
    """Runs store transactions in threads (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._grouped = engine.dialect.name == "sqlite"
        self._pool: ThreadPoolExecutor | None = None
        self._queue: queue.SimpleQueue[_Unit | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    async def run(self, work: Callable[[Store], T]) -> T:
        """``work(store)`` in a transaction, awaited; returns once it committed."""
        return await asyncio.wrap_future(self.submit(work))

    def submit(self, work: Callable[[Store], T]) -> Future[T]:
        """``work(store)`` in a transaction; the future resolves once it committed."""
        unit = _Unit(work, contextvars.copy_context())
        # Running from now on: a caller that stops waiting (a client gone, a cancelled
        # task) cannot cancel it, and the writer can always resolve it.
        unit.future.set_running_or_notify_cancel()
        if self._grouped:
            self._start_thread()
            self._queue.put(unit)
        else:
            self._executor().submit(unit.context.run, _alone, self._engine, unit)
        return unit.future

    def close(self) -> None:
        """Finish the units already submitted, then stop the threads."""
        with self._lock:
            thread, self._thread = self._thread, None
            pool, self._pool = self._pool, None
        if thread is not None:
            self._queue.put(None)
            thread.join()
        if pool is not None:
            pool.shutdown(wait=True)

    def _start_thread(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name="store-writer", daemon=True
                )
                self._thread.start()

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(POSTGRESQL_THREADS, "store-writer")
            return self._pool

    def _serve(self) -> None:
        """The SQLite writer thread: each round, the units queued so far in one
        transaction."""
        while True:
            first = self._queue.get()
            if first is None:
                return
            units = [first]
            stopping = False
            while len(units) < MAX_UNITS_PER_TRANSACTION and not self._queue.empty():
                queued = self._queue.get()
                if queued is None:
                    stopping = True
                    break
                units.append(queued)
            try:
                _together(self._engine, units)
            except Exception as error:  # never let the thread die: every later write would hang
                logger.exception("store writer: unexpected error")
                for unit in units:
                    if not unit.future.done():
                        unit.future.set_exception(error)
            if stopping:
                return


def _alone(engine: Engine, unit: _Unit) -> None:
    """One unit in a transaction of its own (PostgreSQL), in the unit's context."""
    try:
        unit.future.set_result(transaction(engine, unit.work))
    except BaseException as error:  # the caller gets whatever the unit raised
        unit.future.set_exception(error)


def _together(engine: Engine, units: list[_Unit]) -> None:
    """*units* in one transaction; then each future resolved. They run as they come
    and, if one raises, again each in a savepoint (:func:`_in_savepoint`)."""
    try:
        with answering(), engine.begin() as connection:
            for unit in units:
                unit.context.run(_at_once, connection, unit)
    except _UnitRaised:
        _each_in_savepoint(engine, units)
        return
    except BaseException as error:  # the transaction is lost: so is every unit of it
        _fail(units, error)
        return
    _resolve(units)


def _each_in_savepoint(engine: Engine, units: list[_Unit]) -> None:
    """*units* in one transaction, each in a savepoint; then each future resolved."""
    try:
        with answering(), engine.begin() as connection:
            for unit in units:
                unit.context.run(_in_savepoint, connection, unit)
    except BaseException as error:  # the transaction is lost: so is every unit of it
        _fail(units, error)
        return
    _resolve(units)


def _fail(units: list[_Unit], error: BaseException) -> None:
    for unit in units:
        unit.future.set_exception(error)


def _resolve(units: list[_Unit]) -> None:
    for unit in units:
        if unit.error is not None:
            unit.future.set_exception(unit.error)
            continue
        if unit.committed is not None:
            unit.committed()
        unit.future.set_result(unit.result)


class _UnitRaised(Exception):
    """A unit run without a savepoint raised: its transaction is rolled back."""


def _at_once(connection: Connection, unit: _Unit) -> None:
    """:func:`_run` with no savepoint; an error of the unit's own raises
    :class:`_UnitRaised`, so that the units run again each in one."""
    try:
        _run(connection, unit)
    except Exception as error:
        if not _units_own(error):
            raise
        raise _UnitRaised from error


def _in_savepoint(connection: Connection, unit: _Unit) -> None:
    """:func:`_run` in a savepoint; an error of the unit's own rolls back the savepoint
    and stays the unit's."""
    try:
        with savepoint(connection):
            _run(connection, unit)
    except Exception as error:
        if not _units_own(error):
            raise
        unit.error = error


def _run(connection: Connection, unit: _Unit) -> None:
    """Run *unit* and save its audit trail."""
    trail = audit.current()
    unit.result = unit.work(Store(connection))
    unit.committed = trail.save(connection) if trail is not None else None


def _units_own(error: Exception) -> bool:
    """Whether *error* is the unit's own, the transaction still usable: not a database
    that cannot serve now (then the whole transaction fails)."""
    return not (isinstance(error, (PoolTimeout, DBAPIError)) and transient(error))
