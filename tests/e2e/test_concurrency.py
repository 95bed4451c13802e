"""Idempotency and concurrency against real server processes, on the run's database
(SQLite, or PostgreSQL with ``TEST_DATABASE=postgresql``; ``make pytest`` runs both)
(reliability.md section 3 rows "Idempotent re-delivery" and "Concurrent posts for the
same patient"; issue 6 must-show; X06/X07).

* 200 SRs (30 in the quick tier) each sent 3 times, 8 at a time, over STOW-RS, C-STORE
  (DCMTK storescu) and ``POST /assessments`` in turn: every delivery succeeds and each
  document is stored once.
* One patient, 50 timepoints (12 in the quick tier) and one more timepoint sent 8 times,
  all at once through two replicas of the service on the same database: no server
  error, and the final state is the one a serial replay on an empty database gives.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from service.adapters import db
from tests.databases import fresh_database
from tests.e2e import ingest
from tests.e2e.conftest import ServerProcess, free_port
from tests.e2e.ingest import SR_CHANNELS, Channel, Item

pytestmark = pytest.mark.e2e

AT_ONCE = 8


@contextmanager
def replicas(workdir: Path, database_url: str, count: int) -> Iterator[list[tuple[str, int]]]:
    """*count* servers on one database (stateless replicas, README "Scaling out"); per
    replica its base URL and DIMSE port."""
    with ExitStack() as stack:
        found = []
        for index in range(count):
            home = workdir / f"replica-{index}"
            home.mkdir(parents=True)
            dimse_port = free_port()
            server = ServerProcess(home, database_url, TR_DIMSE_PORT=str(dimse_port))
            stack.callback(server.stop)
            server.start()
            found.append((server.base, dimse_port))
        yield found


@contextmanager
def direct(database_url: str) -> Iterator[Engine]:
    engine = db.create_engine(database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def deliver_all(
    deliveries: list[tuple[Channel, Item, tuple[str, int]]], workers: int = AT_ONCE
) -> list[int | None]:
    """Every (channel, item, replica) delivery, *workers* at a time; their statuses."""

    def one(delivery: tuple[Channel, Item, tuple[str, int]]) -> int | None:
        channel, item, (base, dimse_port) = delivery
        return ingest.send(channel, item, base, dimse_port)

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, deliveries))


def failures(
    deliveries: list[tuple[Channel, Item, tuple[str, int]]], statuses: list[int | None]
) -> list[tuple[Channel, str, int | None]]:
    return [
        (channel, item.uid, status)
        for (channel, item, _), status in zip(deliveries, statuses, strict=True)
        if not ingest.acknowledged(status, channel)
    ]


@pytest.mark.parametrize(
    ("documents", "repeats"), [(30, 3), pytest.param(200, 3, marks=pytest.mark.long)]
)
def test_each_sr_sent_three_times_eight_at_a_time_is_stored_once(
    database_url: str, tmp_path: Path, documents: int, repeats: int
) -> None:
    items = ingest.sr_items("IDEMPOTENT", documents)
    deliveries: list[tuple[Channel, Item, tuple[str, int]]] = []
    with replicas(tmp_path, database_url, 1) as (replica,), direct(database_url) as engine:
        for repeat in range(repeats):
            order = random.Random(repeat).sample(items, len(items))
            deliveries += [
                (SR_CHANNELS[(index + repeat) % len(SR_CHANNELS)], item, replica)
                for index, item in enumerate(order)
            ]
        statuses = deliver_all(deliveries)
        assert failures(deliveries, statuses) == []
        assert ingest.stored_documents(engine) == {item.uid: 1 for item in items}
        assert ingest.incomplete_documents(engine, items) == []
        assert len(ingest.diagnostic_reports(engine)) == documents


# -- one patient, concurrent timepoints ----------------------------------------------

PATIENT = "CONCURRENT-1"
SAME_TIMEPOINT_COPIES = 8


def _timepoints(count: int) -> tuple[list[Item], Item]:
    """*count* timepoints two weeks apart, and one more."""
    first = date(2024, 1, 1)
    days = [(first + timedelta(days=14 * n)).strftime("%Y%m%d") for n in range(count + 1)]
    items = ingest.timepoint_items(PATIENT, days)
    return items[:-1], items[-1]


def final_state(engine: Engine) -> dict[str, Any]:
    """What a client can see of the patient: its measurements stored, and per timepoint
    the one current DiagnosticReport's conclusion and codes."""
    measurements = sum(found for _lesions, found in ingest.stored_counts(engine).values())
    reports = [json.loads(found.body) for found in ingest.diagnostic_reports(engine)]
    by_day: dict[str, list[Any]] = {}
    for report in reports:
        by_day.setdefault(report["effectiveDateTime"], []).append(
            (report["conclusion"], report.get("conclusionCode"))
        )
    return {"measurements": measurements, "reports": by_day}


@pytest.mark.parametrize("timepoints", [12, pytest.param(50, marks=pytest.mark.long)])
def test_concurrent_timepoints_of_one_patient_end_as_a_serial_replay(
    database_url: str, tmp_path: Path, timepoints: int
) -> None:
    distinct, same = _timepoints(timepoints)
    with replicas(tmp_path / "concurrent", database_url, 2) as servers:
        deliveries: list[tuple[Channel, Item, tuple[str, int]]] = [
            (SR_CHANNELS[index % len(SR_CHANNELS)], item, servers[index % 2])
            for index, item in enumerate([*distinct, *[same] * SAME_TIMEPOINT_COPIES])
        ]
        random.Random(6).shuffle(deliveries)
        statuses = deliver_all(deliveries)
    assert failures(deliveries, statuses) == []  # no 5xx, not even 503
    with fresh_database(tmp_path / "serial") as serial_url:
        with replicas(tmp_path / "serial", serial_url, 1) as (replica,):
            serial: list[tuple[Channel, Item, tuple[str, int]]] = [
                ("assessments", item, replica) for item in [*distinct, same]
            ]
            assert failures(serial, deliver_all(serial, workers=1)) == []
        with direct(database_url) as concurrent_engine, direct(serial_url) as serial_engine:
            concurrent_state = final_state(concurrent_engine)
            assert concurrent_state == final_state(serial_engine)
    assert len(concurrent_state["reports"]) == timepoints + 1
    assert all(len(found) == 1 for found in concurrent_state["reports"].values())
