"""Storage: each patient's reports and generated results in SQL, as domain objects.

SQLite and PostgreSQL share this code through the SQLAlchemy URL (architecture.md
section 2.3, "Persistence"). SQLAlchemy Core, not the ORM, is used on the hot path
(performance.md sections 2.4 and 6); the tables live in :mod:`.db_schema`. The write
path's statements are :class:`~.prepared.Prepared`: compiled by SQLAlchemy once, run on
the driver itself (sqlite3, psycopg) with SQLAlchemy's type processing.

* :func:`create_engine` applies the SQLite settings of reliability.md section 3 (WAL,
  ``synchronous=FULL``) to every connection.
* :func:`migrate` upgrades the schema to the latest Alembic revision shipped in
  ``migrations/``.
* :func:`open_store` is the unit of work: one transaction per ingest, committed on
  success and rolled back on any exception. A database that does not answer (down,
  disconnected, locked beyond the busy timeout) raises the domain's
  :class:`~service.domain.errors.Unavailable`, so nothing above this module knows
  SQLAlchemy's errors (reliability.md section 4, "DB unavailable").
* :func:`transaction` runs a unit of work again after a serialization failure or a
  deadlock, 3 attempts with jittered backoff, then raises Unavailable (reliability.md
  section 5).

Re-delivery is idempotent: a document is unique per (tenant, uid), and the unique
constraint, not a prior SELECT, decides races between concurrent ingests.
"""

from __future__ import annotations

import logging
import random
import re
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final, TypeVar

import orjson
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, Row, make_url
from sqlalchemy.exc import DBAPIError, OperationalError, TimeoutError as PoolTimeout

from service.adapters import (
    audit,
    checkpoint_codec,
    db_schema as schema,
    fhir_writer,
    lesion_codec,
    timepoint_codec,
)
from service.adapters.bounded_cache import BoundedCache
from service.adapters.db_schema import DEFAULT_TENANT
from service.adapters.fhir_record import FhirRecord
from service.adapters.fhir_writer import IdScheme
from service.adapters.prepared import Prepared
from service.domain.checkpoint import Checkpoint
from service.domain.errors import Conflict, IdentityConflict, NotFound, Unavailable
from service.domain.model import (
    ClinicalSetting,
    LesionObservation,
    Measurement,
    PatientIdentity,
    Primary,
    SourceDocument,
    Therapy,
    TimepointReport,
)

SQLITE_PRAGMAS = ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON")
DEFAULT_LOCK_TIMEOUT_SECONDS = 5.0  # SQLite busy_timeout: wait for the write lock

# reliability.md section 3 "DB outage": a request ends within 10 s, so connecting to a
# PostgreSQL that does not answer gives up after 5.
PG_CONNECT_TIMEOUT_SECONDS = 5

# reliability.md section 5: serialization failure / deadlock, 3 attempts in all.
ATTEMPTS = 3
BACKOFF_SECONDS = 0.05  # attempt n sleeps uniform(0, BACKOFF_SECONDS * 2**n)
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock
RETRY_AFTER_SECONDS = 5  # what a client is told to wait when the database is down
# SQLite primary result codes that say "not now" rather than "wrong statement or schema":
# BUSY, LOCKED, IOERR, FULL, CANTOPEN, PROTOCOL (sqlite.org/rescode.html).
_SQLITE_TRANSIENT = frozenset({5, 6, 10, 13, 14, 15})

logger = logging.getLogger(__name__)
T = TypeVar("T")

AnyRow = Row[*tuple[Any, ...]]

# Key of the PostgreSQL advisory lock that lets one replica at a time migrate.
_MIGRATION_LOCK_KEY = 0x7475_6D72

# The write path's statements, built once with bound parameters and run as
# :class:`~.prepared.Prepared`: compiled once per dialect, then straight on the driver,
# without building and coercing a new expression or an execution context per call
# (performance.md section 2.4, Core on the hot path).
_IDENTITY = sa.and_(
    schema.patient.c.tenant == sa.bindparam("tenant"),
    schema.patient.c.system == sa.bindparam("system"),
    schema.patient.c.value == sa.bindparam("value"),
)
_PATIENT_ID_OF = sa.select(schema.patient.c.id).where(_IDENTITY)
_PATIENT_ID = Prepared(_PATIENT_ID_OF)
# With its checkpoint, which the lock keeps as read until the transaction ends.
_LOCK_PATIENT = Prepared(
    sa.select(schema.patient.c.id, schema.patient.c.checkpoint, schema.patient.c.id_scheme)
    .where(_IDENTITY)
    .with_for_update(key_share=True)
)
_ID_SCHEME = Prepared(sa.select(schema.patient.c.id_scheme).where(_IDENTITY))
_CHECKPOINT = Prepared(sa.select(schema.patient.c.checkpoint).where(_IDENTITY))
_SAVE_CHECKPOINT = Prepared(
    sa.update(schema.patient)
    .where(schema.patient.c.id == sa.bindparam("patient_id"))
    .values(checkpoint=sa.bindparam("checkpoint"))
)
# A patient's documents in storage order, by what names their content; then what
# :func:`_report` reads of those not decoded yet (not their DICOM context).
_PATIENT_DOCUMENTS = Prepared(
    sa.select(
        schema.document.c.id,
        schema.document.c.uid,
        schema.document.c.digest,
        schema.document.c.received_at,
    )
    .join(schema.patient)
    .where(_IDENTITY)
    .order_by(schema.document.c.id)
)
_DOCUMENTS_BY_ID = Prepared(
    sa.select(
        *(
            schema.document.c[name]
            for name in (
                "id",
                "uid",
                "kind",
                "preliminary",
                "imaging_date",
                "label",
                "study_uid",
                "warnings",
                "setting",
                "lesions",
            )
        )
    ).where(schema.document.c.id.in_(sa.bindparam("ids", expanding=True)))
)


def _insert_or_nothing(table: sa.Table, *returning: sa.Column[Any]) -> dict[str, Prepared]:
    """``INSERT ... ON CONFLICT DO NOTHING RETURNING`` *returning*, by dialect name: a
    row a unique constraint refuses (a concurrent transaction stored it first) is
    skipped and not returned, with no error. PostgreSQL aborts the whole transaction on
    an error, so a plain INSERT that may be refused needs a savepoint, two round trips
    more (issue 7, PostgreSQL database time)."""
    return {
        "postgresql": Prepared(
            postgresql.insert(table).on_conflict_do_nothing().returning(*returning)
        ),
        "sqlite": Prepared(sqlite.insert(table).on_conflict_do_nothing().returning(*returning)),
    }


_INSERT_PATIENT = _insert_or_nothing(schema.patient, schema.patient.c.id)
# The id scheme a patient stored now gets (migration 0010: those stored before keep 0).
NEW_PATIENTS_ID_SCHEME: Final = IdScheme.PATIENT_INDEXED
_INSERT_DOCUMENT = _insert_or_nothing(schema.document, schema.document.c.id)
_DIGEST_OF_UID = sa.select(schema.document.c.digest).where(
    schema.document.c.tenant == sa.bindparam("tenant"),
    schema.document.c.uid == sa.bindparam("uid"),
)
_DOCUMENT_DIGEST = Prepared(_DIGEST_OF_UID)
# The digest a document is stored with (NULL if none) and whether its study is stored
# under another patient of the tenant, in one round trip.
_STORED_DOCUMENT = Prepared(
    sa.select(
        _DIGEST_OF_UID.scalar_subquery().label("digest"),
        sa.select(schema.document.c.id)
        .join(schema.patient)
        .where(
            schema.document.c.tenant == sa.bindparam("tenant"),
            schema.document.c.study_uid == sa.bindparam("study_uid"),
            sa.not_(_IDENTITY),
        )
        .exists()
        .label("study_elsewhere"),
    )
)
_LOCK_RESULT = Prepared(
    sa.select(
        schema.timepoint_result.c.id,
        schema.timepoint_result.c.version,
        schema.timepoint_result.c.digest,
        schema.timepoint_result.c.issued,
        schema.timepoint_result.c.resources,
    )
    .where(
        schema.timepoint_result.c.patient_id == sa.bindparam("patient_id"),
        schema.timepoint_result.c.imaging_date == sa.bindparam("day"),
    )
    .with_for_update()
)
_INSERT_RESULT = _insert_or_nothing(schema.timepoint_result, schema.timepoint_result.c.id)
_UPDATE_RESULT = Prepared(
    sa.update(schema.timepoint_result).where(schema.timepoint_result.c.id == sa.bindparam("row_id"))
)
# A timepoint resource id as fhir_writer names it (a UUID's form): nothing of LIKE's.
_TIMEPOINT_RESOURCE_ID: Final = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)
# One resource type a statement: with the types in a second IN list, SQLite probed the
# unique index for every type and id pair (4 x 22 for an SR's timepoint, each a random
# page of a large index) where one type's ids are 22 probes (issue 7, database size).
_LOCK_RESOURCES = Prepared(
    sa.select(schema.fhir_resource)
    .where(
        schema.fhir_resource.c.tenant == sa.bindparam("tenant"),
        schema.fhir_resource.c.resource_type == sa.bindparam("type"),
        schema.fhir_resource.c.resource_id.in_(sa.bindparam("ids", expanding=True)),
    )
    .order_by(schema.fhir_resource.c.id)
    .with_for_update()
)
# PostgreSQL as _insert_or_nothing says, one row an execution in psycopg's pipeline
# (Prepared.many_rows). SQLite: one writer at a time (BEGIN IMMEDIATE), so no other
# transaction can insert a row between _locked_resources and the insert; a plain
# executemany streams the rows, where SQLAlchemy's RETURNING form renders them all into
# one statement (+1.2 MB peak for a 200-lesion SR).
_INSERT_RESOURCE = _insert_or_nothing(
    schema.fhir_resource, schema.fhir_resource.c.resource_type, schema.fhir_resource.c.resource_id
)["postgresql"]
_INSERT_RESOURCE_ROWS = Prepared(sa.insert(schema.fhir_resource))
_UPDATE_RESOURCE = Prepared(
    sa.update(schema.fhir_resource).where(schema.fhir_resource.c.id == sa.bindparam("row_id"))
)


def create_engine(url: str, lock_timeout: float = DEFAULT_LOCK_TIMEOUT_SECONDS) -> Engine:
    """An engine for *url*; SQLite gets its pragmas, a busy timeout of *lock_timeout*
    seconds and a parent directory. PostgreSQL's pooled connections are checked before
    use, so the service recovers by itself when the server comes back; a SQLite file has
    no connection to lose (and the check would cost a query per transaction)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        connect_args = {"connect_timeout": PG_CONNECT_TIMEOUT_SECONDS}
        return sa.create_engine(
            parsed, pool_pre_ping=True, connect_args=connect_args, json_serializer=_json_text
        )
    _make_parent_directory(parsed.database)
    engine = sa.create_engine(parsed, json_serializer=_json_text)
    busy_timeout_ms = round(lock_timeout * 1000)

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        _on_sqlite_connect(dbapi_connection, busy_timeout_ms)

    sa.event.listen(engine, "connect", on_connect)
    sa.event.listen(engine, "begin", _on_sqlite_begin)
    return engine


def _json_text(value: Any) -> str:
    """A JSON column's text: orjson's, ~10 x cheaper than the standard library's (issue
    7: a document's warnings, context and setting); read back by either."""
    return orjson.dumps(value).decode()


def _make_parent_directory(database: str | None) -> None:
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _on_sqlite_connect(dbapi_connection: Any, busy_timeout_ms: int) -> None:
    """Set the pragmas; leave BEGIN to :func:`_on_sqlite_begin` (pysqlite's own
    transaction handling breaks SAVEPOINT; SQLAlchemy's pysqlite documentation)."""
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in (f"busy_timeout={busy_timeout_ms}", *SQLITE_PRAGMAS):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _on_sqlite_begin(connection: Connection) -> None:
    """Take the write lock at BEGIN, waiting up to busy_timeout for it.

    A deferred transaction that read first cannot upgrade to a writer once another
    connection has committed (SQLITE_BUSY_SNAPSHOT, no busy wait), so every store
    transaction is a writer from its start.
    """
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", "service.adapters:migrations")
    return config


def head_revision() -> str | None:
    """The latest revision of the migration history."""
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to *revision* (by default the latest); a no-op when it is
    already there."""
    config = _alembic_config()
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK_KEY)))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


@dataclass(frozen=True, slots=True)
class StoredResult:
    """The stored generated output of one patient timepoint."""

    version: int
    issued: datetime
    changed: bool


@dataclass(frozen=True, slots=True)
class StoredHistory:
    """What :meth:`Store.history` reads of a patient: the checkpoint of its last
    assessment with the reports stored after it (every one it was not made from), or,
    without a usable checkpoint, all its reports; and the ids of all its documents."""

    checkpoint: Checkpoint | None
    reports: list[TimepointReport]
    documents: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class StoredResource:
    """A resource of the index as stored: its version and body."""

    resource_type: str
    resource_id: str
    version: int
    last_updated: datetime
    body: bytes
    changed: bool = False


@contextmanager
def open_store(engine: Engine) -> Iterator[Store]:
    """One transaction: committed on success, rolled back on any exception.

    The audit event of the request or association being served (:func:`audit.current`)
    is saved in the same transaction, after the data rows: both or neither
    (reliability.md section 7).

    Raises :class:`Unavailable` when the database does not answer: it is down or
    disconnected, the pool is exhausted, SQLite stayed locked beyond the busy timeout,
    or PostgreSQL aborted the transaction for a serialization failure or deadlock.
    """
    trail = audit.current()
    with answering(), engine.begin() as connection:
        yield Store(connection)
        committed = trail.save(connection) if trail is not None else None
    if committed is not None:
        committed()


@contextmanager
def answering() -> Iterator[None]:
    """Raise :class:`Unavailable` for a database error that says it cannot serve now
    (:func:`transient`); let every other error through."""
    try:
        yield
    except (PoolTimeout, DBAPIError) as exc:
        if not transient(exc):
            raise
        logger.warning("database unavailable: %s", _describe(exc))
        raise Unavailable("database unavailable; retry later", RETRY_AFTER_SECONDS) from exc


def transaction(engine: Engine, work: Callable[[Store], T]) -> T:
    """``work(store)`` in one :func:`open_store` transaction, run again (up to
    :data:`ATTEMPTS` in all, jittered exponential backoff) when PostgreSQL aborted it for
    a serialization failure or a deadlock. *work* must have no effect outside the store
    that a retry would repeat. Raises :class:`Unavailable` when the last attempt fails
    too."""
    attempt = 1
    while True:
        try:
            with open_store(engine) as store:
                return work(store)
        except Unavailable as exc:
            if attempt >= ATTEMPTS or not _retryable(exc.__cause__):
                raise
        time.sleep(random.uniform(0, BACKOFF_SECONDS * 2**attempt))
        attempt += 1


def transient(exc: Exception) -> bool:
    """Whether *exc* says the database cannot serve now (the same request can succeed
    later), rather than that the statement or the schema is wrong."""
    if isinstance(exc, PoolTimeout):
        return True
    assert isinstance(exc, DBAPIError)
    if isinstance(exc.orig, sqlite3.Error):  # its OperationalError also means "no such table"
        return exc.orig.sqlite_errorcode & 0xFF in _SQLITE_TRANSIENT
    return isinstance(exc, OperationalError) or exc.connection_invalidated


def _retryable(exc: BaseException | None) -> bool:
    """A serialization failure or deadlock: the same transaction, run again, can commit."""
    return isinstance(exc, DBAPIError) and _sqlstate(exc) in _RETRYABLE_SQLSTATES


def _sqlstate(exc: DBAPIError) -> str | None:
    sqlstate = getattr(exc.orig, "sqlstate", None)
    return sqlstate if isinstance(sqlstate, str) else None


def _describe(exc: Exception) -> str:
    """The driver's error class and SQLSTATE: no statement, no parameters (no PHI)."""
    origin = exc.orig if isinstance(exc, DBAPIError) else exc
    sqlstate = _sqlstate(exc) if isinstance(exc, DBAPIError) else None
    return f"{type(origin).__name__}{f' {sqlstate}' if sqlstate else ''}"


class Store:
    """Patients, their reports and results in SQL. Accepts and returns domain objects.

    A store serves one unit of work (a transaction, or a savepoint of one: writer.py)
    and is dropped with it. It remembers the ids of the patients it found or inserted,
    which hold meanwhile (patients are never deleted; a statement that fails writes
    nothing, and the unit of work rolls back as a whole), and the checkpoint of a
    patient it holds (locked or inserted: :meth:`lock_patient` reads it with the lock).
    An insert that a concurrent transaction's row refuses is skipped (ON CONFLICT DO
    NOTHING), not an error, so single statements need no savepoint.
    """

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._dialect = connection.dialect.name
        self._patient_ids: dict[tuple[str, PatientIdentity], int] = {}
        # The checkpoint of each patient read or written in this transaction.
        self._checkpoints_read: dict[tuple[str, PatientIdentity], checkpoint_codec.Stored] = {}
        # The checkpoint column of each patient this transaction holds (locked, inserted):
        # no other transaction changes it before this one ends.
        self._held_checkpoints: dict[tuple[str, PatientIdentity], bytes | None] = {}
        # The id scheme of each patient locked or inserted in this transaction.
        self._id_schemes: dict[tuple[str, PatientIdentity], IdScheme] = {}
        # The patients this transaction inserted, and the documents (id, report) it added.
        self._inserted: set[tuple[str, PatientIdentity]] = set()
        self._added: dict[tuple[str, PatientIdentity], list[tuple[int, TimepointReport]]] = {}

    def ping(self) -> None:
        """Fail unless the database answers."""
        self._connection.execute(sa.select(1)).scalar_one()

    def add_report(
        self,
        report: TimepointReport,
        digest: str,
        tenant: str = DEFAULT_TENANT,
        dicom_context: dict[str, Any] | None = None,
    ) -> bool:
        """Store *report*; False if this document is already stored with *digest*.

        *dicom_context* (:func:`service.adapters.sr_context.extract`) is kept with the
        document for SR write-back. Raises :class:`Conflict` when the document was
        stored with another digest, :class:`IdentityConflict` when its study is stored
        under another patient of the tenant.
        """
        audit.note_patient(report.patient)
        audit.note_document(report.source)
        (stored,) = _STORED_DOCUMENT.rows(
            self._connection,
            {
                **_identity(report.patient, tenant),
                "uid": report.source.uid,
                "study_uid": report.study_uid,
            },
        )
        stored_digest: str | None = stored.digest
        if stored_digest is None:
            if stored.study_elsewhere:  # linking it would mix two people's images
                raise IdentityConflict(  # (reliability.md section 4, "identity conflict")
                    f"study {report.study_uid} is already stored under another patient"
                )
            inserted = self._insert_report(report, digest, tenant, dicom_context)
            if inserted:
                return True
            # A concurrent transaction stored the document first, and has committed.
            stored_digest = self._document_digest(report.source.uid, tenant)
            if stored_digest is None:
                raise Unavailable(f"document {report.source.uid} is being stored; try again")
        if stored_digest != digest:
            raise Conflict(f"document {report.source.uid} was already stored with other content")
        return False

    def lock_patient(self, patient: PatientIdentity, tenant: str = DEFAULT_TENANT) -> None:
        """Hold *patient* (created if new) until this transaction ends, once no other
        transaction holds it: PostgreSQL ``SELECT ... FOR NO KEY UPDATE``, which does not
        wait for the key-share locks foreign keys take. SQLite writers take turns for the
        whole transaction already (BEGIN IMMEDIATE). A patient this transaction inserts
        is invisible to the others until it commits."""
        self._ensure_patient(patient, tenant, lock=True)

    def id_scheme(self, patient: PatientIdentity, tenant: str = DEFAULT_TENANT) -> IdScheme:
        """How *patient*'s timepoint resources are named (stored with the patient: a new
        one gets :data:`NEW_PATIENTS_ID_SCHEME`); raises :class:`NotFound` when the
        patient is not stored."""
        key = (tenant, patient)
        if key not in self._id_schemes:
            found = _ID_SCHEME.scalar(self._connection, _identity(patient, tenant))
            if found is None:
                raise NotFound("no such patient")
            self._id_schemes[key] = IdScheme(found)
        return self._id_schemes[key]

    def reports(
        self, patient: PatientIdentity, tenant: str = DEFAULT_TENANT
    ) -> list[TimepointReport]:
        """All reports of *patient*, in the order they were stored.

        One row per document: its lesions come from its ``lesions`` column; only the
        documents stored before that column existed are read from their lesion and
        measurement rows.
        """
        return self._decoded(patient, tenant, self._documents(patient, tenant))

    def history(self, patient: PatientIdentity, tenant: str = DEFAULT_TENANT) -> StoredHistory:
        """The patient's checkpoint and the reports stored after it (:class:`StoredHistory`).

        A checkpoint holds while every document it was made from is stored (documents
        are never removed: always, unless the database was edited by hand). A patient
        this transaction inserted, without a checkpoint yet, has the documents it added:
        no SELECT (issue 7).
        """
        key = (tenant, patient)
        added = self._added.get(key)
        if added and key in self._inserted and self._held_checkpoints.get(key) is None:
            audit.note_patient(patient)
            ids = tuple(document_id for document_id, _report in added)
            return StoredHistory(None, [report for _id, report in added], ids)
        documents = self._documents(patient, tenant)
        ids = tuple(row.id for row in documents)
        stored = self._checkpoint(patient, tenant)
        if stored is None or not stored.documents <= set(ids):
            return StoredHistory(None, self._decoded(patient, tenant, documents), ids)
        after = [row for row in documents if row.id not in stored.documents]
        return StoredHistory(stored.checkpoint, self._decoded(patient, tenant, after), ids)

    def save_checkpoint(
        self,
        patient: PatientIdentity,
        checkpoint: Checkpoint,
        documents: Sequence[int],
        tenant: str = DEFAULT_TENANT,
    ) -> None:
        """Keep *checkpoint*, made from the documents of ids *documents*, for the patient's
        next assessment. What it keeps of the one :meth:`history` read is not encoded
        again."""
        key = (tenant, patient)
        stored = checkpoint_codec.encode(checkpoint, documents, self._checkpoints_read.get(key))
        patient_id = self._ensure_patient(patient, tenant)
        _SAVE_CHECKPOINT.run(
            self._connection, {"patient_id": patient_id, "checkpoint": stored.column}
        )
        self._checkpoints_read[key] = stored
        if key in self._held_checkpoints:
            self._held_checkpoints[key] = stored.column
        _CHECKPOINTS.put(key, stored)

    def _checkpoint(self, patient: PatientIdentity, tenant: str) -> checkpoint_codec.Stored | None:
        """The patient's stored checkpoint, if any is readable."""
        key = (tenant, patient)
        data: bytes | None
        if key in self._held_checkpoints:
            data = self._held_checkpoints[key]
        else:
            data = _CHECKPOINT.scalar(self._connection, _identity(patient, tenant))
        self._checkpoints_read.pop(key, None)
        if data is None:
            return None
        data = bytes(data)
        stored = _CHECKPOINTS.get(key)
        if stored is None or stored.column != data:
            try:
                stored = checkpoint_codec.decode(data)
            except ValueError as exc:  # assessed from the reports, and written anew
                logger.warning("patient checkpoint not read: %s", exc)
                return None
            if stored is None:
                return None
            _CHECKPOINTS.put(key, stored)
        self._checkpoints_read[key] = stored
        return stored

    def _documents(self, patient: PatientIdentity, tenant: str) -> Sequence[AnyRow]:
        """The patient's document rows (:data:`_PATIENT_DOCUMENTS`); NotFound if none."""
        audit.note_patient(patient)
        documents = _PATIENT_DOCUMENTS.rows(self._connection, _identity(patient, tenant))
        if not documents:
            raise NotFound("no such patient")
        return documents

    def _decoded(
        self, patient: PatientIdentity, tenant: str, documents: Sequence[AnyRow]
    ) -> list[TimepointReport]:
        """The reports of the *documents* rows, each decoded once per process."""
        keys = {row.id: _decoded_key(tenant, patient, *row) for row in documents}
        found = {
            document_id: report
            for document_id, key in keys.items()
            if (report := _DECODED_REPORTS.get(key)) is not None
        }
        missing = [document_id for document_id in keys if document_id not in found]
        if missing:
            for document_id, report in self._read_reports(patient, missing).items():
                _DECODED_REPORTS.put(keys[document_id], report)
                found[document_id] = report
        return [found[row.id] for row in documents]

    def _read_reports(
        self, patient: PatientIdentity, document_ids: Sequence[int]
    ) -> dict[int, TimepointReport]:
        """The reports of *document_ids*, decoded from their rows."""
        rows = _DOCUMENTS_BY_ID.rows(self._connection, {"ids": document_ids})
        from_rows = self._lesions_from_rows([row.id for row in rows if row.lesions is None])
        return {
            row.id: _report(
                patient,
                row,
                from_rows[row.id]
                if row.lesions is None
                else lesion_codec.decode(bytes(row.lesions)),
            )
            for row in rows
        }

    def _lesions_from_rows(
        self, document_ids: Sequence[int]
    ) -> dict[int, tuple[LesionObservation, ...]]:
        """The lesions of *document_ids* rebuilt from their lesion and measurement rows."""
        if not document_ids:
            return {}
        lsn, m = schema.lesion, schema.measurement
        lesions = self._connection.execute(
            sa.select(lsn)
            .where(lsn.c.document_id.in_(document_ids))
            .order_by(lsn.c.document_id, lsn.c.position)
        ).all()
        measurements = self._connection.execute(
            sa.select(m)
            .join(lsn)
            .where(lsn.c.document_id.in_(document_ids))
            .order_by(m.c.lesion_id, m.c.position)
        ).all()
        by_lesion: defaultdict[int, list[Measurement]] = defaultdict(list)
        for row in measurements:
            by_lesion[row.lesion_id].append(lesion_codec.measurement(row._mapping))
        by_document: defaultdict[int, list[LesionObservation]] = defaultdict(list)
        for row in lesions:
            by_document[row.document_id].append(
                lesion_codec.lesion(row._mapping, tuple(by_lesion[row.id]))
            )
        return {document_id: tuple(by_document[document_id]) for document_id in document_ids}

    def patients(self, tenant: str = DEFAULT_TENANT) -> list[PatientIdentity]:
        """Every patient with at least one stored report, by identifier system and value."""
        p, d = schema.patient, schema.document
        with_reports = sa.select(d.c.patient_id).where(d.c.tenant == tenant)
        rows = self._connection.execute(
            sa.select(p.c.system, p.c.value)
            .where(p.c.tenant == tenant, p.c.id.in_(with_reports))
            .order_by(p.c.system, p.c.value)
        ).all()
        return [PatientIdentity(row.system, row.value) for row in rows]

    def put_timepoint(
        self,
        patient: PatientIdentity,
        day: date,
        digest: str,
        resources: Callable[[StoredResult], Sequence[tuple[FhirRecord, int | None]]],
        tenant: str = DEFAULT_TENANT,
    ) -> StoredResult:
        """Keep the output of *patient*'s timepoint *day*: its result, whose content has
        *digest* (version 1 when new, bumped when the digest changed), and the FHIR
        resources *resources* gives for that result, each with its wanted version as
        :meth:`put_resources` takes them, and versioned as it does.

        A patient of :attr:`IdScheme.PATIENT_INDEXED` has them in the result row
        (:mod:`.timepoint_codec`), so a new timepoint, each report's usual case, is one
        INSERT (ON CONFLICT DO NOTHING), instead of ~22 rows of the resource index and
        their index entries (issue 7); the row is read, locked, only when it was there.
        The patients stored before revision 0011 keep them as rows of the resource index
        (:meth:`put_resources`)."""
        patient_id = self._patient_id(patient, tenant)
        if patient_id is None:
            raise NotFound("no such patient")
        kept = self.id_scheme(patient, tenant) is IdScheme.PATIENT_INDEXED
        new = StoredResult(1, _now(), changed=True)
        row = {
            "patient_id": patient_id,
            "imaging_date": day,
            "version": new.version,
            "digest": digest,
            "issued": new.issued,
        }
        if kept:
            row |= _kept_columns(resources(new), [], day, new.issued)
        if _INSERT_RESULT[self._dialect].first(self._connection, row) is not None:
            if not kept:
                self.put_resources(resources(new), tenant)
            return new
        current = self._locked_result(patient_id, day)
        assert current is not None  # stored before, by this transaction or a committed one
        stored = StoredResult(current.version, current.issued, changed=False)
        update: dict[str, Any] = {}
        if current.digest != digest:
            stored = StoredResult(current.version + 1, _now(), changed=True)
            update = {"version": stored.version, "issued": stored.issued, "digest": digest}
        if current.resources is None:  # stored before revision 0011: rows of the index
            self.put_resources(resources(stored), tenant)
        else:
            before = timepoint_codec.decode(bytes(current.resources))
            update |= _kept_columns(resources(stored), before, day, _now())
        if update:
            _UPDATE_RESULT.run(self._connection, {"row_id": current.id, **update})
        return stored

    def put_resource(
        self, record: FhirRecord, version: int | None = None, tenant: str = DEFAULT_TENANT
    ) -> StoredResource:
        """Keep *record* in the FHIR resource index.

        The version is *version* when given (a DiagnosticReport follows its
        timepoint result), else the stored one, bumped when the body changed.
        """
        return self.put_resources([(record, version)], tenant)[0]

    def put_resources(
        self,
        records: Sequence[tuple[FhirRecord, int | None]],
        tenant: str = DEFAULT_TENANT,
    ) -> list[StoredResource]:
        """Keep each *record* with its wanted version in the FHIR resource index, as
        :meth:`put_resource` does, in one locking SELECT and batched writes.

        On PostgreSQL the rows are inserted first (ON CONFLICT DO NOTHING) and only those
        already stored are locked: a new patient's resources need no SELECT, which
        without table statistics (a new database's first minute, before autovacuum
        analyses it) reads every index row of their types (issue 7).

        Returns the stored resources in the order of *records*; a record repeated in
        *records* is stored in turn, the later seeing the earlier.
        """
        if not records:
            return []
        keys = [(record.resource_type, record.resource_id) for record, _ in records]
        if len(set(keys)) != len(keys):
            return [self._put_one(record, version, tenant) for record, version in records]
        if self._dialect == "sqlite":  # one writer at a time: what is not stored is missing
            # A patient inserted by this transaction has no Patient resource yet (its row
            # would name the patient): a new patient's needs no SELECT (issue 7).
            current = self._locked_resources(
                [
                    key
                    for (record, _), key in zip(records, keys, strict=True)
                    if key[0] != "Patient" or (tenant, record.patient) not in self._inserted
                ],
                tenant,
            )
            missing = [
                (record, version) for record, version in records if _key(record) not in current
            ]
            inserted = self._insert_resources(missing, tenant)
        else:  # every row inserted that can be, then the others locked
            inserted = self._insert_resources(records, tenant)
            current = self._locked_resources([key for key in keys if key not in inserted], tenant)
        stored: list[StoredResource] = []
        updates: list[dict[str, Any]] = []
        for record, version in records:
            found = inserted.get(_key(record))
            if found is None and _key(record) not in current:
                # A concurrent transaction inserted it first.
                found = self._put_one(record, version, tenant)
            elif found is None:
                found, update = _updated(current[_key(record)], record, version)
                if update is not None:
                    updates.append(update)
            stored.append(found)
        if updates:
            _UPDATE_RESOURCE.many(self._connection, updates)
        return stored

    def _put_one(self, record: FhirRecord, version: int | None, tenant: str) -> StoredResource:
        """:meth:`put_resources` of one record, retried once a concurrent insert of
        the same row has been seen."""
        key = [_key(record)]
        current = self._locked_resources(key, tenant)
        if not current:
            inserted = self._insert_resources([(record, version)], tenant)
            if key[0] in inserted:
                return inserted[key[0]]
            current = self._locked_resources(key, tenant)
            assert current  # the insert lost a race to this row
        found, update = _updated(current[key[0]], record, version)
        if update is not None:
            _UPDATE_RESOURCE.many(self._connection, [update])
        return found

    def resource(
        self, resource_type: str, resource_id: str, tenant: str = DEFAULT_TENANT
    ) -> StoredResource:
        """The indexed resource *resource_type*/*resource_id*."""
        r = schema.fhir_resource
        row = self._connection.execute(
            sa.select(r).where(
                r.c.tenant == tenant,
                r.c.resource_type == resource_type,
                r.c.resource_id == resource_id,
            )
        ).one_or_none()
        found = (
            self._timepoint_resource(resource_type, resource_id, tenant)
            if row is None
            else _stored_resource(row)
        )
        if found is None:
            raise NotFound(f"no {resource_type} with id {resource_id}")
        audit.note_resource(resource_type, resource_id)
        return found

    def search_resources(
        self,
        resource_type: str,
        *,
        patient: PatientIdentity | None = None,
        identifier: str | None = None,
        since: date | None = None,
        until: date | None = None,
        tenant: str = DEFAULT_TENANT,
    ) -> list[StoredResource]:
        """Indexed resources of *resource_type* matching every given criterion, by
        effective date (undated last), then those received before those generated
        (:meth:`put_timepoint`), then in the order they were first stored; *since* /
        *until* bound the effective date inclusively. The resources kept in timepoint
        rows have no business identifier a search looks up (fhir_index)."""
        r = schema.fhir_resource
        query = sa.select(r).where(r.c.tenant == tenant, r.c.resource_type == resource_type)
        identity: dict[str, str] = {}
        if patient is not None:
            audit.note_patient(patient)
            query = query.where(r.c.patient_id.in_(_PATIENT_ID_OF))
            identity = _identity(patient, tenant)
        if identifier is not None:
            query = query.where(r.c.identifier == identifier)
        if since is not None:
            query = query.where(r.c.effective_date >= since)
        if until is not None:
            query = query.where(r.c.effective_date <= until)
        rows = self._connection.execute(query, identity).all()
        found = [
            (_search_order(row.effective_date, 0, row.id), _stored_resource(row)) for row in rows
        ]
        if identifier is None and resource_type in timepoint_codec.KEPT_TYPES:
            found.extend(self._timepoint_resources(resource_type, patient, since, until, tenant))
        found.sort(key=lambda pair: pair[0])
        return [resource for _order, resource in found]

    def _timepoint_resource(
        self, resource_type: str, resource_id: str, tenant: str
    ) -> StoredResource | None:
        """The resource *resource_type*/*resource_id* kept in a timepoint's result row
        (:meth:`put_timepoint`), found through the patient whose prefix it begins with."""
        kept = resource_type in timepoint_codec.KEPT_TYPES
        if not kept or not _TIMEPOINT_RESOURCE_ID.fullmatch(resource_id):
            return None
        t, p = schema.timepoint_result, schema.patient
        sep = timepoint_codec.ID_SEPARATOR
        columns = self._connection.execute(
            sa.select(t.c.resources)
            .join(p, p.c.id == t.c.patient_id)
            .where(
                p.c.resource_prefix == resource_id[: fhir_writer.ID_PREFIX_LENGTH],
                p.c.tenant == tenant,
                t.c.resource_ids.contains(f"{sep}{resource_id}{sep}", autoescape=True),
            )
        ).scalars()
        for column in columns:
            for item in timepoint_codec.decode(column):
                if item.key == (resource_type, resource_id):
                    return _kept_resource(item)
        return None

    def _timepoint_resources(
        self,
        resource_type: str,
        patient: PatientIdentity | None,
        since: date | None,
        until: date | None,
        tenant: str,
    ) -> list[tuple[SearchOrder, StoredResource]]:
        """The resources of *resource_type* kept in timepoint rows (:meth:`put_timepoint`)
        that :meth:`search_resources` finds, each with its place in the order it gives.
        A dated one's effective date is its timepoint's (timepoint_codec.merged)."""
        t, p = schema.timepoint_result, schema.patient
        query = (
            sa.select(t.c.id, t.c.imaging_date, t.c.resources)
            .join(p, p.c.id == t.c.patient_id)
            .where(p.c.tenant == tenant, t.c.resources.is_not(None))
        )
        identity: dict[str, str] = {}
        if patient is not None:
            query = query.where(p.c.id.in_(_PATIENT_ID_OF))
            identity = _identity(patient, tenant)
        if since is not None:
            query = query.where(t.c.imaging_date >= since)
        if until is not None:
            query = query.where(t.c.imaging_date <= until)
        bounded = since is not None or until is not None  # an undated one is outside
        found: list[tuple[SearchOrder, StoredResource]] = []
        for row in self._connection.execute(query, identity):
            for position, item in enumerate(timepoint_codec.decode(row.resources)):
                if item.resource_type == resource_type and (item.dated or not bounded):
                    day = row.imaging_date if item.dated else None
                    order = _search_order(day, 1, row.id, position)
                    found.append((order, _kept_resource(item)))
        return found

    def _locked_resources(
        self, keys: Sequence[tuple[str, str]], tenant: str
    ) -> dict[tuple[str, str], AnyRow]:
        """The stored rows of *keys* (resource type, id), locked for update."""
        ids_by_type: dict[str, list[str]] = {}
        for resource_type, resource_id in dict.fromkeys(keys):
            ids_by_type.setdefault(resource_type, []).append(resource_id)
        found: dict[tuple[str, str], AnyRow] = {}
        for resource_type, ids in sorted(ids_by_type.items()):  # one locking order
            params = {"tenant": tenant, "type": resource_type, "ids": ids}
            for row in _LOCK_RESOURCES.rows(self._connection, params):
                found[row.resource_type, row.resource_id] = row
        return found

    def _insert_resources(
        self, records: Sequence[tuple[FhirRecord, int | None]], tenant: str
    ) -> dict[tuple[str, str], StoredResource]:
        """Insert *records* at their wanted version (else 1); returns those inserted: a
        record a concurrent transaction inserted first is skipped."""
        if not records:
            return {}
        stored: dict[tuple[str, str], StoredResource] = {}
        rows: list[dict[str, Any]] = []
        for record, version in records:
            resource = StoredResource(
                record.resource_type, record.resource_id, version or 1, _now(), record.body, True
            )
            stored[_key(record)] = resource
            patient = record.patient
            patient_id = None if patient is None else self._ensure_patient(patient, tenant)
            rows.append(
                {
                    "tenant": tenant,
                    "patient_id": patient_id,
                    "resource_type": record.resource_type,
                    "resource_id": record.resource_id,
                    "identifier": record.identifier,
                    "version": resource.version,
                    "last_updated": resource.last_updated,
                    "effective_date": record.effective_date,
                    "body": record.body,
                }
            )
        if self._dialect == "sqlite":
            _INSERT_RESOURCE_ROWS.many(self._connection, rows)
            return stored
        found = _INSERT_RESOURCE.many_rows(self._connection, rows)
        return {key: stored[key] for key in map(tuple, found)}

    def dicom_context(
        self, patient: PatientIdentity, day: date, tenant: str = DEFAULT_TENANT
    ) -> dict[str, Any] | None:
        """The DICOM context of the newest stored document of *patient* imaged on *day*
        that has one; None when no DICOM document of that day has a context."""
        d = schema.document
        query = (
            sa.select(d.c.dicom_context)
            .join(schema.patient)
            .where(_IDENTITY, d.c.imaging_date == day, d.c.dicom_context.is_not(None))
            .order_by(d.c.id.desc())
            .limit(1)
        )
        found = self._connection.execute(query, _identity(patient, tenant))
        context: dict[str, Any] | None = found.scalar_one_or_none()
        return context

    def _document_digest(self, uid: str, tenant: str) -> str | None:
        stored: str | None = _DOCUMENT_DIGEST.scalar(
            self._connection, {"tenant": tenant, "uid": uid}
        )
        return stored

    def _patient_id(
        self, patient: PatientIdentity, tenant: str, *, lock: bool = False
    ) -> int | None:
        """The id of *patient*, None when it is not stored. *lock* holds its row as
        :meth:`lock_patient` says, so it asks the database even for a known id."""
        key = (tenant, patient)
        if not lock and key in self._patient_ids:
            return self._patient_ids[key]
        if lock:
            row = _LOCK_PATIENT.first(self._connection, _identity(patient, tenant))
            if row is None:
                return None
            self._held_checkpoints[key] = row.checkpoint
            self._id_schemes[key] = IdScheme(row.id_scheme)
            found: int | None = row.id
        else:
            found = _PATIENT_ID.scalar(self._connection, _identity(patient, tenant))
        if found is not None:
            self._patient_ids[key] = found
        return found

    def _ensure_patient(self, patient: PatientIdentity, tenant: str, *, lock: bool = False) -> int:
        """The id of *patient*, inserted if new; *lock* as for :meth:`_patient_id`."""
        found = self._patient_id(patient, tenant, lock=lock)
        if found is not None:
            return found
        row = {
            **_identity(patient, tenant),
            "id_scheme": int(NEW_PATIENTS_ID_SCHEME),
            "resource_prefix": fhir_writer.id_prefix(patient),
        }
        inserted: int | None = _INSERT_PATIENT[self._dialect].scalar(self._connection, row)
        if inserted is None:  # a concurrent transaction inserted the patient first
            found = self._patient_id(patient, tenant, lock=lock)
            if found is None:
                raise Unavailable("the patient is being stored; try again")
            return found
        self._patient_ids[tenant, patient] = inserted
        self._inserted.add((tenant, patient))
        self._held_checkpoints[tenant, patient] = None  # a new row: none yet
        self._id_schemes[tenant, patient] = NEW_PATIENTS_ID_SCHEME
        return inserted

    def _insert_report(
        self,
        report: TimepointReport,
        digest: str,
        tenant: str,
        dicom_context: dict[str, Any] | None,
    ) -> bool:
        """Insert the document, its lesions in its ``lesions`` column (the lesion and
        measurement tables hold those of documents stored before that column: db_schema);
        False, inserting nothing, when a document of its uid is stored (a concurrent
        transaction inserted it first).

        One INSERT, so all of the report or none of it, with no savepoint: a report its
        encoding refuses (ValueError) is refused before anything is written, its new
        patient included."""
        lesions = lesion_codec.encode(report.lesions)
        patient_id = self._ensure_patient(report.patient, tenant)
        document_row = _document_row(report, digest, tenant, patient_id)
        document_row["lesions"] = lesions
        if dicom_context is not None:  # else SQL NULL: JSON would store None as 'null'
            document_row["dicom_context"] = dicom_context
        document_id: int | None = _INSERT_DOCUMENT[self._dialect].scalar(
            self._connection, document_row
        )
        if document_id is None:
            return False
        self._added.setdefault((tenant, report.patient), []).append((document_id, report))
        # What the row decodes to is *report* (lesion_codec is exact): a history read
        # later in this process (this request's assessment) does not decode it again.
        # If this transaction rolls back, the key names a row that is never read.
        key = _decoded_key(
            tenant,
            report.patient,
            document_id,
            report.source.uid,
            digest,
            document_row["received_at"],
        )
        _DECODED_REPORTS.put(key, report)
        return True

    def _locked_result(self, patient_id: int, day: date) -> AnyRow | None:
        slot = {"patient_id": patient_id, "day": day}
        found: AnyRow | None = _LOCK_RESULT.first(self._connection, slot)
        return found


def _now() -> datetime:
    return datetime.now(UTC)


def _identity(patient: PatientIdentity, tenant: str) -> dict[str, str]:
    """The parameters of :data:`_IDENTITY`, also a new patient row."""
    return {"tenant": tenant, "system": patient.system, "value": patient.value}


def _document_row(
    report: TimepointReport, digest: str, tenant: str, patient_id: int
) -> dict[str, Any]:
    return {
        "tenant": tenant,
        "patient_id": patient_id,
        "uid": report.source.uid,
        "kind": report.source.kind,
        "digest": digest,
        "preliminary": report.source.preliminary,
        "imaging_date": report.date,
        "label": report.label,
        "study_uid": report.study_uid,
        "warnings": list(report.warnings),
        "received_at": _now(),
        **({} if report.setting is None else {"setting": _setting_json(report.setting)}),
    }


# Decoded documents (:mod:`.bounded_cache`): a patient's earlier timepoints are decoded
# once per process, not on every request of that patient (issue 7, history growth).
# A 10-lesion report keeps ~30 KB and ~140 objects the collector walks in its full
# passes (~0.1 ms): 512 of them are ~15 MB and ~50 ms a pass.
_DECODED_REPORTS: BoundedCache[TimepointReport] = BoundedCache(512)

# The last checkpoint read or written of each patient: a patient's next request in this
# process compares the stored bytes instead of decoding them again. Weighed by its bytes
# (4 KiB units; a 10-lesion patient's is ~20 KiB at its first timepoint, +~0.7 KiB a
# step): ~4 MiB of them, with the objects they decode to.
_CHECKPOINTS: BoundedCache[checkpoint_codec.Stored] = BoundedCache(
    1024, weight=lambda kept: 1 + len(kept.data) // 4096
)


def _decoded_key(
    tenant: str,
    patient: PatientIdentity,
    document_id: int,
    uid: str,
    digest: str,
    received_at: datetime,
) -> tuple[Any, ...]:
    """The :data:`_DECODED_REPORTS` key of a document row. A document never changes:
    its uid and content digest name what it decodes to, with when it was received (tests
    give made-up digests; a row id is reused after a rollback on SQLite)."""
    return (tenant, patient, document_id, uid, digest, received_at)


def forget_decoded_documents() -> None:
    """Empty the caches of decoded documents and checkpoints (a benchmark's cold start)."""
    _DECODED_REPORTS.clear()
    _CHECKPOINTS.clear()


def _report(
    patient: PatientIdentity, row: AnyRow, lesions: tuple[LesionObservation, ...]
) -> TimepointReport:
    return TimepointReport(
        patient=patient,
        date=row.imaging_date,
        source=SourceDocument(uid=row.uid, kind=row.kind, preliminary=row.preliminary),
        lesions=lesions,
        label=row.label,
        study_uid=row.study_uid,
        warnings=tuple(row.warnings),
        setting=None if row.setting is None else _setting(row.setting),
    )


def _key(record: FhirRecord) -> tuple[str, str]:
    return record.resource_type, record.resource_id


def _updated(
    current: AnyRow, record: FhirRecord, version: int | None
) -> tuple[StoredResource, dict[str, Any] | None]:
    """What storing *record* at *version* over the *current* row gives, and the
    UPDATE parameters, None when nothing changes."""
    if bytes(current.body) == record.body and (version is None or version == current.version):
        return _stored_resource(current, changed=False), None
    wanted = version if version is not None else current.version + 1
    updated = _now()
    update = {
        "row_id": current.id,
        "version": wanted,
        "last_updated": updated,
        "body": record.body,
        "identifier": record.identifier,
        "effective_date": record.effective_date,
    }
    stored = StoredResource(
        record.resource_type, record.resource_id, wanted, updated, record.body, changed=True
    )
    return stored, update


# A search result's place (Store.search_resources): undated last, by date, received
# (0: rows of the index) before generated (1: timepoint rows), by row, by position.
SearchOrder = tuple[bool, date, int, int, int]


def _search_order(day: date | None, source: int, row_id: int, position: int = 0) -> SearchOrder:
    return (day is None, day or date.min, source, row_id, position)


def _kept_columns(
    records: Sequence[tuple[FhirRecord, int | None]],
    before: Sequence[timepoint_codec.Item],
    day: date,
    now: datetime,
) -> dict[str, Any]:
    """The ``resources`` and ``resource_ids`` of a result row keeping *records* over the
    items *before* (:func:`timepoint_codec.merged`); nothing when the items are those
    before."""
    items, changed = timepoint_codec.merged(before, records, day, now)
    if before and not any(changed):
        return {}
    return {
        "resources": timepoint_codec.encode(items),
        "resource_ids": timepoint_codec.resource_ids(items),
    }


def _kept_resource(item: timepoint_codec.Item) -> StoredResource:
    return StoredResource(
        item.resource_type, item.resource_id, item.version, item.last_updated, item.body
    )


def _stored_resource(row: AnyRow, changed: bool = False) -> StoredResource:
    return StoredResource(
        row.resource_type, row.resource_id, row.version, row.last_updated, bytes(row.body), changed
    )


def _setting_json(setting: ClinicalSetting) -> dict[str, Any]:
    return {
        "primary": None if setting.primary is None else setting.primary.value,
        "therapies": sorted(therapy.value for therapy in setting.therapies),
    }


def _setting(found: dict[str, Any]) -> ClinicalSetting:
    primary = found.get("primary")
    return ClinicalSetting(
        primary=None if primary is None else Primary(primary),
        therapies=frozenset(Therapy(value) for value in found.get("therapies", ())),
    )
