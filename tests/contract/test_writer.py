"""Store transactions off the event loop (service/adapters/writer.py) on a real database:
SQLite commits the units queued meanwhile together (each in a savepoint once one of
them raises); PostgreSQL runs them side by side. Every result is given only once its
transaction committed."""

from __future__ import annotations

import asyncio
import collections
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from service.adapters import audit, db
from service.adapters.db_schema import audit_event
from service.adapters.writer import Writer
from service.domain.errors import Conflict, Unavailable
from service.domain.model import SourceDocument, TimepointReport
from tests.contract.test_db import BASELINE, PATIENT, rich_report, row_counts
from tests.databases import backend, statements_run


@pytest.fixture
def writer(migrated_engine: Engine) -> Iterator[Writer]:
    found = Writer(migrated_engine)
    yield found
    found.close()


def _report(n: int) -> TimepointReport:
    return replace(
        rich_report(f"1.2.826.0.1.{n}", BASELINE + timedelta(days=n)),
        study_uid=f"1.2.826.0.2.{n}",
    )


def _storing(n: int) -> Callable[[db.Store], int]:
    def work(store: db.Store) -> int:
        store.add_report(_report(n), f"digest-{n}")
        return n

    return work


def _held(writer: Writer, n: int) -> tuple[Future[int], threading.Event]:
    """Unit *n* submitted and running: it holds its transaction until the event is set."""
    running, release = threading.Event(), threading.Event()

    def work(store: db.Store) -> int:
        running.set()
        release.wait(10)
        return _storing(n)(store)

    future = writer.submit(work)
    assert running.wait(10)
    return future, release


def _visible_documents(engine: Engine) -> int:
    """Documents a fresh connection sees: what has committed."""
    return row_counts(engine)["document"]


def test_units_queued_during_a_commit_share_the_next_transaction(
    writer: Writer, migrated_engine: Engine
) -> None:
    commits: list[int] = []
    sa.event.listen(migrated_engine, "commit", lambda _connection: commits.append(1))
    first, release = _held(writer, 0)  # the others queue while it runs
    rest = [writer.submit(_storing(n)) for n in range(1, 9)]
    release.set()
    assert [future.result(30) for future in [first, *rest]] == list(range(9))
    assert _visible_documents(migrated_engine) == 9
    if backend() == "sqlite":
        assert len(commits) == 2  # the first alone, then the eight queued behind it
    else:
        assert len(commits) == 9  # PostgreSQL: a transaction each, side by side


def test_a_failing_unit_rolls_back_alone(writer: Writer, migrated_engine: Engine) -> None:
    with db.open_store(migrated_engine) as store:
        store.add_report(_report(0), "digest-0")

    def conflicting(store: db.Store) -> None:
        store.add_report(_report(50), "digest-50")  # written, then rolled back
        store.add_report(replace(_report(51), source=SourceDocument("1.2.826.0.1.0", "x")), "b")

    held, release = _held(writer, 1)
    queued: list[Future[Any]] = [writer.submit(conflicting), writer.submit(_storing(2))]
    release.set()
    assert [held.result(30), queued[1].result(30)] == [1, 2]
    with pytest.raises(Conflict):
        queued[0].result(30)
    with db.open_store(migrated_engine) as store:
        uids = [report.source.uid for report in store.reports(PATIENT)]
    assert sorted(uids) == ["1.2.826.0.1.0", "1.2.826.0.1.1", "1.2.826.0.1.2"]


@pytest.mark.sqlite_only("PostgreSQL runs each unit in a transaction of its own")
def test_units_run_without_savepoints_and_again_in_them_when_one_raises(
    writer: Writer, migrated_engine: Engine
) -> None:
    """A transaction of units that do not raise has no savepoint; one that raises rolls
    back its transaction, whose units then run again each in a savepoint: those before
    it twice, those after it once, each stored once."""
    runs: collections.Counter[int] = collections.Counter()

    def counted(n: int) -> Callable[[db.Store], int]:
        def work(store: db.Store) -> int:
            runs[n] += 1
            return _storing(n)(store)

        return work

    def failing(store: db.Store) -> None:
        raise Conflict("refused")

    with statements_run(migrated_engine) as seen:
        held, release = _held(writer, 1)
        queued = [writer.submit(counted(2)), writer.submit(counted(3))]
        release.set()
        assert [future.result(30) for future in [held, *queued]] == [1, 2, 3]
    assert len([statement for statement in seen if "INSERT INTO document" in statement]) == 3
    assert not [statement for statement in seen if "SAVEPOINT" in statement]
    held, release = _held(writer, 4)
    group: list[Future[Any]] = [
        writer.submit(counted(5)),
        writer.submit(failing),
        writer.submit(counted(6)),
    ]
    release.set()
    assert [held.result(30), group[0].result(30), group[2].result(30)] == [4, 5, 6]
    with pytest.raises(Conflict):
        group[1].result(30)
    assert runs == {2: 1, 3: 1, 5: 2, 6: 1}
    assert _visible_documents(migrated_engine) == 6


def test_a_result_is_given_only_after_its_commit(writer: Writer, migrated_engine: Engine) -> None:
    async def store_then_look() -> tuple[int, int]:
        stored = await writer.run(_storing(7))
        return stored, _visible_documents(migrated_engine)

    assert asyncio.run(store_then_look()) == (7, 1)


def test_each_unit_saves_the_audit_trail_of_its_caller(
    writer: Writer, migrated_engine: Engine
) -> None:
    async def one(n: int) -> None:
        trail = audit.Trail(type=audit.REST, action="C", address="127.0.0.1", tenant="default")
        with audit.recording(trail):
            await writer.run(_storing(n))

    async def several() -> None:
        await asyncio.gather(*(one(n) for n in range(5)))

    asyncio.run(several())
    with migrated_engine.connect() as connection:
        events = connection.execute(sa.select(sa.func.count()).select_from(audit_event))
        assert events.scalar_one() == 5


@pytest.mark.sqlite_only("a second connection holding SQLite's write lock")
def test_a_database_that_cannot_commit_fails_every_unit_and_keeps_none(
    tmp_path: Path,
) -> None:
    engine = db.create_engine(f"sqlite:///{tmp_path / 'store.db'}", lock_timeout=0.3)
    db.migrate(engine)
    writer = Writer(engine)
    holder = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing, longer than we wait
    try:
        futures = [writer.submit(_storing(n)) for n in range(3)]
        for future in futures:
            with pytest.raises(Unavailable):
                future.result(30)
    finally:
        holder.rollback()
        holder.close()
    assert _visible_documents(engine) == 0
    assert writer.submit(_storing(4)).result(30) == 4  # and it recovers
    writer.close()
    engine.dispose()


def test_close_finishes_what_was_submitted(migrated_engine: Engine) -> None:
    writer = Writer(migrated_engine)
    futures = [writer.submit(_storing(n)) for n in range(4)]
    writer.close()
    assert all(future.done() for future in futures)
    assert _visible_documents(migrated_engine) == 4


def test_a_caller_that_stops_waiting_leaves_the_writer_serving(
    writer: Writer, migrated_engine: Engine
) -> None:
    async def give_up_then_store() -> tuple[int, int]:
        held, release = _held(writer, 0)
        abandoned = writer.submit(_storing(1))
        waiting = asyncio.ensure_future(asyncio.wrap_future(abandoned))
        await asyncio.sleep(0)
        waiting.cancel()  # as when the client disconnects
        release.set()
        assert held.result(30) == 0
        stored = await asyncio.wait_for(writer.run(_storing(2)), 30)
        # PostgreSQL's writer threads run side by side: the abandoned unit may finish last.
        return stored, abandoned.result(30)

    assert asyncio.run(give_up_then_store()) == (2, 1)
    assert _visible_documents(migrated_engine) == 3  # the abandoned unit is stored too
