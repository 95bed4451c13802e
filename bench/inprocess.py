"""In-process measurements of the SR request path (no HTTP): growth in lesions,
in history length and in database size, and the database's share of a request.

:class:`Ingest` runs what ``POST /assessments`` runs for one ``application/dicom``
body answered with the FHIR Bundle: parse, read, store, assess, serialise.
"""

from __future__ import annotations

import dataclasses
import random
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bench import bodies, driver_clock, postgres
from service import services
from service.adapters import content_digest, db, db_schema as T, fhir_writer, sr_reader
from service.domain.model import (
    AssessmentParameters,
    LesionObservation,
    PatientIdentity,
    SourceDocument,
)
from service.entrypoints import read_process

BASE_URL = "http://127.0.0.1/fhir"


def _clocks() -> tuple[float, float]:
    """Wall and CPU (this process, user + system) time, in seconds."""
    return time.perf_counter(), time.process_time()


class TimedStore(db.Store):
    """A :class:`~service.adapters.db.Store` adding the wall and the CPU time of its
    public calls to ``seconds`` and ``cpu_seconds`` (outermost calls only)."""

    seconds = 0.0
    cpu_seconds = 0.0
    _depth = 0

    def __getattribute__(self, name: str) -> Any:
        found = super().__getattribute__(name)
        if name.startswith("_") or not callable(found):
            return found

        def timed(*args: Any, **kwargs: Any) -> Any:
            cls = TimedStore
            cls._depth += 1
            wall, cpu = _clocks()
            try:
                return found(*args, **kwargs)
            finally:
                cls._depth -= 1
                if cls._depth == 0:
                    cls.seconds += time.perf_counter() - wall
                    cls.cpu_seconds += time.process_time() - cpu

        return timed


def new_engine(path: Path) -> Engine:
    """A migrated SQLite database at *path*."""
    return migrated(f"sqlite:///{path}")


def migrated(url: str) -> Engine:
    """An engine on *url*, as the service creates it, migrated to the latest schema."""
    engine = db.create_engine(url)
    db.migrate(engine)
    return engine


@dataclasses.dataclass
class Ingest:
    """One SR body in, the FHIR Bundle bytes out, on *engine* (the HTTP handler's steps).
    It counts the time inside the store's calls (``store_seconds``, their encoding and
    decoding included) and the database driver's (``driver``)."""

    engine: Engine
    store_seconds: float = 0.0
    store_cpu_seconds: float = 0.0
    driver: driver_clock.Clock = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.driver = driver_clock.attach(self.engine)

    def reset(self) -> None:
        """Count the store's and the database's time from zero (after a warm-up)."""
        self.store_seconds = self.store_cpu_seconds = 0.0
        self.driver.reset()

    def __call__(self, data: bytes) -> bytes:
        inbound = read_process.read_dicom(data)
        TimedStore.seconds = TimedStore.cpu_seconds = 0.0
        begin = _clocks()
        with self.engine.begin() as connection:  # open_store's transaction
            entered = _clocks()
            bundle = services.assess_reports(
                TimedStore(connection),
                [inbound],
                [],
                AssessmentParameters(),
                BASE_URL,
                tenant=T.DEFAULT_TENANT,
            )
            leaving = _clocks()
        left = _clocks()
        # BEGIN IMMEDIATE and COMMIT count as the store's time too.
        wall, cpu = ((entered[i] - begin[i]) + (left[i] - leaving[i]) for i in (0, 1))
        self.store_seconds += TimedStore.seconds + wall
        self.store_cpu_seconds += TimedStore.cpu_seconds + cpu
        return fhir_writer.dumps(bundle)


@dataclasses.dataclass(frozen=True)
class Cost:
    """Per-request CPU (process_time) and wall time, in ms, over *n* requests."""

    cpu_ms: float
    wall_ms: float
    n: int


def cost(run: Callable[[bytes], object], data: Sequence[bytes]) -> Cost:
    """Mean cost of ``run`` over every body in *data* (each body once)."""
    cpu, wall = time.process_time(), time.perf_counter()
    for body in data:
        run(body)
    n = len(data)
    return Cost(1e3 * (time.process_time() - cpu) / n, 1e3 * (time.perf_counter() - wall) / n, n)


def interleaved(
    first: Callable[[bytes], object],
    first_data: Sequence[bytes],
    second: Callable[[bytes], object],
    second_data: Sequence[bytes],
) -> tuple[list[Cost], list[Cost]]:
    """Each request's cost, of *first* over *first_data* and of *second* over
    *second_data* (as many bodies each), their requests taken in turn, so that a change
    in the shared machine's load weighs on both alike."""
    costs: tuple[list[Cost], list[Cost]] = ([], [])
    for pair in zip(first_data, second_data, strict=True):
        for found, run, body in zip(costs, (first, second), pair, strict=True):
            found.append(cost(run, [body]))
    return costs


def summary(costs: Sequence[Cost], center: Callable[[list[float]], float]) -> Cost:
    """One :class:`Cost` of single-request *costs*: their *center* (mean, median)."""
    return Cost(center([c.cpu_ms for c in costs]), center([c.wall_ms for c in costs]), len(costs))


def database_share(ingest: Ingest, measured: Cost) -> dict[str, Any]:
    """The database's share of the requests *measured* on *ingest* (its clocks counted
    from zero over just those requests): ``share``, the wall time of the driver's calls
    (statements and commits: :mod:`bench.driver_clock`) over the request's, and
    ``cpu_share``, their CPU time (this process's) over the request's; the same for the
    store's calls with the encoding and decoding they do (``store_share``,
    ``store_cpu_share``)."""
    per_request = 1e3 / measured.n
    driver = ingest.driver
    store_ms, store_cpu_ms = (
        per_request * s for s in (ingest.store_seconds, ingest.store_cpu_seconds)
    )
    return {
        "request_wall_ms": measured.wall_ms,
        "request_cpu_ms": measured.cpu_ms,
        "db_wall_ms_per_request": per_request * driver.wall,
        "db_cpu_ms_per_request": per_request * driver.cpu,
        "commit_wall_ms_per_request": per_request * driver.commits_wall,
        "commit_cpu_ms_per_request": per_request * driver.commits_cpu,
        "share": per_request * driver.wall / measured.wall_ms,
        "cpu_share": per_request * driver.cpu / measured.cpu_ms,
        "store_wall_ms_per_request": store_ms,
        "store_cpu_ms_per_request": store_cpu_ms,
        "store_share": store_ms / measured.wall_ms,
        "store_cpu_share": store_cpu_ms / measured.cpu_ms,
    }


def postgres_share(data: Sequence[bytes], server: str = postgres.POSTGRES_URL) -> dict[str, Any]:
    """:func:`database_share` of *data* (the first two a warm-up) on a fresh schema of
    the PostgreSQL *server*; says why when it is unreachable."""
    problem = postgres.unreachable(server)
    if problem is not None:
        return {"skipped": problem}
    with postgres.fresh_schema(server) as url:
        ingest = Ingest(migrated(url))
        try:
            cost(ingest, data[:2])
            ingest.reset()
            return {"server": "postgresql", **database_share(ingest, cost(ingest, data[2:]))}
        finally:
            ingest.engine.dispose()


def lesion_growth(workdir: Path, small: int, large: int) -> dict[str, Any]:
    """Parse + assess cost of an SR of 200 lesions against one of 10 (each of its own
    patient), on one database, after a short warm-up."""
    ingest = Ingest(new_engine(workdir / "growth.db"))
    ten = list(bodies.distinct_srs(small + 5, 10, prefix="G10"))
    two_hundred = list(bodies.distinct_srs(large + 1, 200, prefix="G200"))
    cost(ingest, ten[:5] + two_hundred[:1])
    c10, c200 = cost(ingest, ten[5:]), cost(ingest, two_hundred[1:])
    return {
        "cost_10": dataclasses.asdict(c10),
        "cost_200": dataclasses.asdict(c200),
        "ratio": c200.cpu_ms / c10.cpu_ms,
        "bytes_10": len(ten[0]),
        "bytes_200": len(two_hundred[0]),
    }


def history_growth(workdir: Path, patients: int) -> dict[str, Any]:
    """Cost of the 10th and of the 50th timepoint of a patient. Earlier timepoints are
    stored directly (the parsed template, re-dated, each with its own sizes), but for the
    one just before the timed one, which goes the whole path as the timed one does.
    Measured twice: *warm*, right after that previous request of the patient in this
    process, and *cold*, with what this process decoded forgotten (another worker, or
    after a restart). The ratio is the median over the patients of each one's 50th
    against its own 10th, measured a few milliseconds apart: the machine's speed can drift
    by a third within one run (10th timepoints of 8.6-9.5 ms, then of 5.6-5.8), and the
    medians of all the 10th and of all the 50th then compare moments as much as
    timepoints (the warm ratio of medians 1.41 and 1.56 in two such runs, 1.10-1.13 in
    steady ones, where the paired ratio gave 1.10-1.12). The medians of each, their
    ratio and the means are reported beside it."""
    ingest = Ingest(new_engine(workdir / "history.db"))
    sr = bodies.template(10)
    parsed = sr_reader.read_sr(sr)
    first = date(2020, 1, 6)
    costs: dict[tuple[str, int], list[Cost]] = {}
    for index in range(2 * patients + 2):  # the first patient of each kind is the warm-up
        warm = index % 2 == 0
        patient_id = f"H-{index:05d}"
        patient = PatientIdentity(parsed.patient.system, patient_id)
        stored = 0
        for timepoint in (10, 50):
            with db.open_store(ingest.engine) as store:
                for n in range(stored + 1, timepoint - 1):
                    store.add_report(
                        dataclasses.replace(
                            parsed,
                            patient=patient,
                            date=first + timedelta(weeks=6 * n),
                            lesions=_resized(parsed.lesions, n),
                            source=SourceDocument(f"2.25.{index}{n:03d}", "dicom-sr"),
                            study_uid=f"2.25.1{index}{n:03d}",  # its own study (no conflict)
                        ),
                        content_digest.digest(f"{patient_id}/{n}".encode()),
                    )
            previous, day = (first + timedelta(weeks=6 * n) for n in (timepoint - 1, timepoint))
            ingest(bodies.stamp(sr, patient_id, previous.strftime("%Y%m%d")))
            if not warm:
                db.forget_decoded_documents()
            _checkpoint_wal(ingest.engine)
            body = bodies.stamp(sr, patient_id, day.strftime("%Y%m%d"))
            measured = cost(ingest, [body])
            if index > 1:
                costs.setdefault(("warm" if warm else "cold", timepoint), []).append(measured)
            stored = timepoint
    found: dict[str, Any] = {"patients": patients}
    for kind in ("warm", "cold"):
        # Medians, as for the database's size: one request's collection or spike decided
        # the means (cold 10th timepoints of 7.1-13.5 ms and one of 141 ms gave 0.67).
        c10, c50 = (summary(costs[kind, n], statistics.median).cpu_ms for n in (10, 50))
        m10, m50 = (summary(costs[kind, n], statistics.fmean).cpu_ms for n in (10, 50))
        paired = zip(costs[kind, 10], costs[kind, 50], strict=True)  # patient by patient
        found[kind] = {
            "cpu_ms_10th": c10,
            "cpu_ms_50th": c50,
            "ratio": statistics.median(late.cpu_ms / early.cpu_ms for early, late in paired),
            "ratio_of_medians": c50 / c10,
            "mean_cpu_ms_10th": m10,
            "mean_cpu_ms_50th": m50,
            "mean_ratio": m50 / m10,
        }
    return found


def _checkpoint_wal(engine: Engine) -> None:
    """Copy SQLite's write-ahead log into the database now, so that the automatic
    checkpoint (at 1,000 pages, ~12 requests here) does not fall on the timed request:
    it is upkeep proportional to the pages written, the same at every timepoint, and
    charged whole to one request it decided a mean of 20 (10th / 50th 1.13 or 1.00 as it
    fell on one side or the other)."""
    connection = engine.raw_connection()  # outside a transaction, as a checkpoint must be
    try:
        connection.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)").close()
    finally:
        connection.close()


def _resized(lesions: Sequence[LesionObservation], n: int) -> tuple[LesionObservation, ...]:
    """*lesions* with every size 0.1 mm x *n* larger: each timepoint its own content."""
    return tuple(
        dataclasses.replace(
            lesion,
            measurements=tuple(
                dataclasses.replace(m, value=m.value + Decimal(n) / 10) for m in lesion.measurements
            ),
        )
        for lesion in lesions
    )


# A 10-lesion SR's timepoint in the resource index, besides its Patient: a BodyStructure
# per lesion, a measurement Observation per lesion, the result Observations and the
# DiagnosticReport, each under a random UUID as their UUIDv5 ids are (fhir_writer).
TIMEPOINT_RESOURCES = (
    *("BodyStructure",) * 10,
    *("Observation",) * 11,
    "DiagnosticReport",
)
RESOURCE_BODY = b'{"resourceType":"Observation",' + b'"x":"' + b"y" * 700 + b'"}'  # ~740 B


def populate(engine: Engine, patients: int, batch: int = 20_000) -> float:
    """Fill the SQLite database of *engine* with *patients* patients of one 10-lesion
    document each (two measurements per lesion), each with its Patient and a timepoint's
    resources (:data:`TIMEPOINT_RESOURCES`, random ids, bodies of a real one's size) in
    the resource index, by executemany of Core inserts with SQLite's own column formats
    (rows as the service wrote them before revisions 0006 and 0011, which it now keeps in
    a document's and a result's column: more rows and index entries than a database
    of today's has); returns seconds. The population runs with a page cache of 256 MiB (its own
    connection's; the measured requests use the service's settings)."""
    start = time.perf_counter()
    when, day = "2024-01-01 00:00:00.000000", "2024-01-05"
    random_ids = random.Random(patients)
    rows: dict[sa.Table, Callable[[int], list[tuple[Any, ...]]]] = {
        T.patient: lambda i: [(i, "default", "urn:bench", f"P{i:07d}")],
        T.document: lambda i: [
            (i, "default", i, f"2.25.9{i}", "dicom-sr", f"{i:064x}", 0, day, "[]", when)
        ],
        T.lesion: lambda i: [
            (
                i * 10 + k,
                i,
                k,
                f"2.25.8{i}{k}",
                f"T{k + 1}",
                "target",
                "10200004",
                "SCT",
                "Liver",
                0,
                "[]",
            )
            for k in range(10)
        ],
        T.measurement: lambda i: [
            (i * 10 + k, m, kind, "12.5", f"1.{k}.{m}")
            for k in range(10)
            for m, kind in enumerate(("long-axis", "short-axis"))
        ],
        T.fhir_resource: lambda i: [
            ("default", i, "Patient", f"p{i}", f"urn:bench|P{i:07d}", 1, when, b"{}"),
            *(
                (
                    "default",
                    i,
                    kind,
                    str(uuid.UUID(int=random_ids.getrandbits(128))),
                    None,
                    1,
                    when,
                    RESOURCE_BODY,
                )
                for kind in TIMEPOINT_RESOURCES
            ),
        ],
    }
    columns = {
        T.patient: ("id", "tenant", "system", "value"),
        T.document: (
            "id",
            "tenant",
            "patient_id",
            "uid",
            "kind",
            "digest",
            "preliminary",
            "imaging_date",
            "warnings",
            "received_at",
        ),
        T.lesion: (
            "id",
            "document_id",
            "position",
            "tracking_uid",
            "tracking_id",
            "role",
            "site_code",
            "site_scheme",
            "site_meaning",
            "is_nodal",
            "findings",
        ),
        T.measurement: ("lesion_id", "position", "kind", "value", "path"),
        T.fhir_resource: (
            "tenant",
            "patient_id",
            "resource_type",
            "resource_id",
            "identifier",
            "version",
            "last_updated",
            "body",
        ),
    }
    for low in range(1, patients + 1, batch):
        ids = range(low, min(low + batch, patients + 1))
        with engine.begin() as connection:
            connection.exec_driver_sql("PRAGMA cache_size=-262144")
            for table, make in rows.items():
                statement = table.insert().compile(engine, column_keys=list(columns[table]))
                connection.exec_driver_sql(str(statement), [row for i in ids for row in make(i)])
    engine.dispose()  # the measured requests get connections of the service's settings
    return time.perf_counter() - start
