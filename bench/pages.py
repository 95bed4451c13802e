"""The pages an SR request makes SQLite write, by table and index:
``python -m bench.pages``.

A commit in WAL mode appends every page the transaction changed to the write-ahead log
(a frame: a 24-byte header, then the page) and syncs it (``synchronous=FULL``), so a
request's commit costs about its number of pages, most of them leaves of indexes it
inserted into at random (issue 7, README "Performance"). Each request here runs as
``POST /assessments`` runs it (:class:`bench.inprocess.Ingest`), alone in its
transaction, on a database that already holds *patients* patients: its frames are read
from the log (copied into the database and emptied before each request, untimed) and
each is charged to the table or index owning that page (SQLite's ``dbstat`` virtual
table). ``--follow-up T`` stores T timepoints of each patient first and times the next
one of some of them, the usual request of a hospital; otherwise each request is a new
patient, as in ``make bench``.

The WAL format (sqlite.org/fileformat2.html, "The WAL File Format"): a 32-byte header
(the page size as a big-endian 32-bit integer at offset 8), then frames, each starting
with its page number (big-endian 32-bit).
"""

from __future__ import annotations

import argparse
import collections
import json
import sqlite3
import struct
import sys
import tempfile
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from bench import bodies, inprocess

_WAL_HEADER = 32
_FRAME_HEADER = 24
_FIRST_DAY = date(2020, 1, 6)


def wal_pages(wal: Path) -> list[int]:
    """The page number of each frame of the write-ahead log *wal*, in log order."""
    data = wal.read_bytes() if wal.exists() else b""
    if len(data) < _WAL_HEADER:
        return []
    (page_size,) = struct.unpack_from(">I", data, 8)
    frame = _FRAME_HEADER + page_size
    return [
        struct.unpack_from(">I", data, start)[0]
        for start in range(_WAL_HEADER, len(data) - frame + 1, frame)
    ]


def page_owners(database: Path) -> dict[int, str]:
    """Page number -> the table or index (or ``sqlite_schema``, whose first page holds
    the database header each commit updates) it belongs to; the index SQLite makes for a
    UNIQUE constraint is named by its table and columns."""
    with sqlite3.connect(database) as connection:
        owners = dict(connection.execute("SELECT pageno, name FROM dbstat"))
        names = {name: _label(connection, name) for name in set(owners.values())}
    return {page: names[name] for page, name in owners.items()}


def _label(connection: sqlite3.Connection, name: str) -> str:
    if not name.startswith("sqlite_autoindex_"):
        return name
    (table,) = connection.execute(
        "SELECT tbl_name FROM sqlite_schema WHERE name = ?", (name,)
    ).fetchone()
    columns = [row[2] for row in connection.execute(f"PRAGMA index_info('{name}')")]
    return f"{table} UNIQUE ({', '.join(columns)})"


def empty_wal(engine: Engine) -> None:
    """Copy the write-ahead log into the database and empty it."""
    connection = engine.raw_connection()  # outside a transaction, as a checkpoint must be
    try:
        connection.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
    finally:
        connection.close()


def frames_by_owner(
    database: Path, engine: Engine, ingest: inprocess.Ingest, data: Sequence[bytes]
) -> dict[str, float]:
    """Frames per request of *data* (each body in a transaction of its own), by owner,
    most first; a page no table or index owns now is on the free list (an overflow page
    given up when a long value, such as a patient's checkpoint, was rewritten)."""
    wal = database.with_name(database.name + "-wal")
    pages: list[int] = []
    for body in data:
        empty_wal(engine)
        ingest(body)
        pages.extend(wal_pages(wal))
    owners = page_owners(database)
    counted = collections.Counter(owners.get(page, "(free list)") for page in pages)
    return {name: round(count / len(data), 2) for name, count in counted.most_common()}


def measure(requests: int, patients: int, follow_up: int) -> dict[str, Any]:
    """Frames per request on a database of *patients* patients (each with *follow_up*
    timepoints, the request being the next one; with 0, each request a new patient)."""
    with tempfile.TemporaryDirectory() as workdir:
        database = Path(workdir) / "pages.db"
        engine = inprocess.new_engine(database)
        ingest = inprocess.Ingest(engine)
        template = bodies.template(10)
        for patient in range(patients):
            for timepoint in range(follow_up or 1):
                ingest(_body(template, patient, timepoint))
        if follow_up:
            step = max(patients // requests, 1)
            data = [_body(template, step * n % patients, follow_up) for n in range(requests)]
        else:
            data = [_body(template, patients + n, 0) for n in range(requests)]
        owners = frames_by_owner(database, engine, ingest, data)
        engine.dispose()
    return {
        "requests": requests,
        "patients": patients,
        "follow_up": follow_up,
        "frames_per_request": round(sum(owners.values()), 2),
        "by_owner": owners,
    }


def _body(template: Any, patient: int, timepoint: int) -> bytes:
    day = _FIRST_DAY + timedelta(weeks=6 * timepoint)
    return bodies.stamp(template, f"PAGES-{patient:06d}", day.strftime("%Y%m%d"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--patients", type=int, default=2000, help="stored before")
    parser.add_argument("--follow-up", type=int, default=0, metavar="T")
    args = parser.parse_args(argv)
    found = measure(args.requests, args.patients, args.follow_up)
    sys.stdout.write(json.dumps(found, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
