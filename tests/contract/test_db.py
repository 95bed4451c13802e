"""The storage adapter against a real database: SQLite, or PostgreSQL when the run asks
for it (tests/databases.py; ``make pytest`` runs both)."""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from service.adapters import lesion_codec
from service.adapters.db import (
    StoredResult,
    create_engine,
    forget_decoded_documents,
    head_revision,
    migrate,
    open_store,
)
from service.adapters.db_schema import (
    document,
    fhir_resource,
    lesion,
    measurement,
    metadata,
    patient as patient_table,
)
from service.adapters.fhir_record import FhirRecord
from service.adapters.fhir_writer import IdScheme
from service.domain.errors import Conflict, IdentityConflict, NotFound
from service.domain.model import (
    DEFAULT_PATIENT_SYSTEM,
    ClinicalSetting,
    Code,
    Coordinates,
    LesionIdentity,
    LesionObservation,
    LesionRole,
    LesionState,
    Measurement,
    MeasurementKind,
    PatientIdentity,
    Primary,
    Provenance,
    QualitativeFinding,
    SourceDocument,
    Therapy,
    TimepointReport,
)

PATIENT = PatientIdentity(DEFAULT_PATIENT_SYSTEM, "P-001")
BASELINE = date(2024, 1, 15)
# An FL value (0.1 as float32 is 0.100000001490116...) keeps every digit.
FLOAT32_TENTH = struct.unpack("<f", struct.pack("<f", 0.1))[0]
REGIONS = (
    Coordinates("POLYLINE", (10.5, FLOAT32_TENTH, 40.125, -3e-7), referenced_sop_uid="1.2.9"),
    Coordinates("POINT", (-120.5, 33.25, 1e20), frame_of_reference_uid="1.2.10"),
)


def rich_report(uid: str = "1.2.826.0.1.1", day: date = BASELINE) -> TimepointReport:
    """A report using every field the store keeps, None fields included."""
    target = LesionObservation(
        identity=LesionIdentity("2.25.101", "T1"),
        role=LesionRole.TARGET,
        site=Code("39607008", "SCT", "Lung structure"),
        state=LesionState.PRESENT,
        measurements=(
            Measurement(
                MeasurementKind.LONG_AXIS, Decimal("32.40"), Provenance("1.4.2", "1.2.9", REGIONS)
            ),
            Measurement(MeasurementKind.SHORT_AXIS, Decimal("1.2E+1")),
        ),
        findings=(
            QualitativeFinding(
                Code("112176", "DCM", "Cavitation"), "present", Code("present", "99TR", "Present")
            ),
            QualitativeFinding(Code("C0205", "99TR"), "rim enhancing"),
        ),
        slice_thickness_mm=Decimal("1.25"),
    )
    node = LesionObservation(
        identity=LesionIdentity(tracking_id="N1"),
        role=LesionRole.NON_TARGET,
        site=Code("59441001", "SCT"),
        is_nodal=True,
        measurements=(Measurement(MeasurementKind.SHORT_AXIS, Decimal("9.9")),),
    )
    merged = LesionObservation(
        identity=LesionIdentity(tracking_uid="2.25.103"),
        state=LesionState.MERGED,
        merged_into=LesionIdentity("2.25.101", "T1"),
    )
    dense = LesionObservation(
        identity=LesionIdentity(tracking_uid="2.25.104"),
        role=LesionRole.NEW_TARGET,
        measurements=(
            Measurement(MeasurementKind.MEAN_ATTENUATION, Decimal("-12.50")),
            Measurement(MeasurementKind.VIABLE_LONG_AXIS, Decimal("0")),
        ),
    )
    return TimepointReport(
        patient=PATIENT,
        date=day,
        source=SourceDocument(uid, "dicom-sr", preliminary=True),
        lesions=(target, node, merged, dense),
        label="baseline",
        study_uid="1.2.826.0.1.9",
        warnings=("slice thickness 5 mm exceeds 2x the lesion size", "second warning"),
    )


def plain_report(uid: str = "bundle-2", day: date = date(2024, 3, 1)) -> TimepointReport:
    """A report with every optional field left at its default."""
    return TimepointReport(
        patient=PATIENT, date=day, source=SourceDocument(uid, "fhir"), lesions=()
    )


def row_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            table.name: connection.execute(
                sa.select(sa.func.count()).select_from(table)
            ).scalar_one()
            for table in metadata.sorted_tables
        }


def add(engine: Engine, report: TimepointReport, digest: str, tenant: str = "default") -> bool:
    with open_store(engine) as store:
        return store.add_report(report, digest, tenant)


def add_as_before_0006(engine: Engine, report: TimepointReport, digest: str) -> None:
    """*report* stored as before revision 0006: its lesions and measurements in rows of
    their own, its document's lesions column NULL."""
    assert add(engine, report, digest)
    with engine.begin() as connection:
        (document_id,) = connection.execute(
            sa.update(document)
            .where(document.c.uid == report.source.uid)
            .values(lesions=None)
            .returning(document.c.id)
        ).one()
        for position, observation in enumerate(report.lesions):
            fields = {"document_id": document_id, "position": position}
            lesion_id = connection.execute(
                sa.insert(lesion)
                .values(**fields, **lesion_codec.lesion_fields(observation))
                .returning(lesion.c.id)
            ).scalar_one()
            for index, found in enumerate(observation.measurements):
                connection.execute(
                    sa.insert(measurement).values(
                        lesion_id=lesion_id,
                        position=index,
                        **lesion_codec.measurement_fields(found),
                    )
                )


def stored_reports(engine: Engine, tenant: str = "default") -> list[TimepointReport]:
    """The patient's reports decoded from their rows, as another process reads them (this
    one keeps what it stored or decoded: :func:`read_here`)."""
    forget_decoded_documents()
    return read_here(engine, tenant)


def read_here(engine: Engine, tenant: str = "default") -> list[TimepointReport]:
    with open_store(engine) as store:
        return store.reports(PATIENT, tenant)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An empty database of this run's backend (tests/databases.py)."""
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def db(engine: Engine) -> Engine:
    """A migrated database on each backend."""
    migrate(engine)
    return engine


def test_migrate_twice_gives_the_schema_of_the_metadata(engine: Engine) -> None:
    migrate(engine)
    migrate(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection)
        assert compare_metadata(context, metadata) == []
        assert context.get_current_revision() == head_revision() == "0011"


def test_ping(db: Engine) -> None:
    with open_store(db) as store:
        store.ping()


def test_reports_round_trip_exactly_in_storage_order(db: Engine) -> None:
    rich, plain = rich_report(), plain_report()
    assert add(db, plain, "d-plain")
    assert add(db, rich, "d-rich")
    reports = stored_reports(db)
    assert reports == [plain, rich]
    assert str(reports[1].lesions[0].measurements[0].value) == "32.40"


def test_documents_stored_before_the_lesions_column_read_from_their_rows(db: Engine) -> None:
    """Revision 0006 reads lesions from one column; older documents (NULL there) still
    read from their lesion and measurement rows. A new document writes no such rows
    (issue 7): its column alone."""
    older, newer = rich_report(), rich_report("1.2.826.0.1.2", BASELINE + timedelta(days=60))
    add_as_before_0006(db, older, "d-older")
    assert add(db, newer, "d-newer")
    assert stored_reports(db) == [older, newer]
    counts = row_counts(db)
    assert counts["lesion"] == len(older.lesions)
    assert counts["measurement"] == sum(len(found.measurements) for found in older.lesions)
    with db.connect() as connection:
        kept = connection.execute(sa.select(document.c.lesions).order_by(document.c.id)).all()
    assert [row.lesions is None for row in kept] == [True, False]


def test_a_documents_lesions_are_stored_compressed_and_read_as_written_before(
    db: Engine,
) -> None:
    """The lesions column holds its JSON compressed (issue 7); a column written before,
    the JSON as it is, reads as well."""
    older, newer = rich_report(), rich_report("1.2.826.0.1.2", BASELINE + timedelta(days=60))
    assert add(db, older, "d-older")
    assert add(db, newer, "d-newer")
    plain_json = lesion_codec.dumps(lesion_codec.plain(older.lesions))
    with db.begin() as connection:
        columns = connection.execute(sa.select(document.c.lesions).order_by(document.c.id))
        assert all(len(column) < len(plain_json) for (column,) in columns)
        connection.execute(
            sa.update(document).where(document.c.uid == older.source.uid).values(lesions=plain_json)
        )
    assert stored_reports(db) == [older, newer]


def test_a_history_read_again_is_not_decoded_again(db: Engine) -> None:
    """Stored documents never change, so each is decoded once per process (issue 7)."""
    older, newer = rich_report(), rich_report("1.2.826.0.1.2", BASELINE + timedelta(days=60))
    assert add(db, older, "d-older")
    first = stored_reports(db)
    assert add(db, newer, "d-newer")
    second = read_here(db)
    assert first == [older] and second == [older, newer]
    assert second[0] is first[0]


def test_a_report_just_stored_is_read_as_it_was_given(db: Engine) -> None:
    """The process that stores a report does not decode it again (issue 7): what it
    reads is the report it stored, which another process decodes equal to it."""
    older, newer = rich_report(), rich_report("1.2.826.0.1.2", BASELINE + timedelta(days=60))
    assert add(db, older, "d-older") and add(db, newer, "d-newer")
    here = read_here(db)
    assert here[0] is older and here[1] is newer
    assert stored_reports(db) == here


def test_a_report_whose_transaction_rolled_back_is_not_read(db: Engine) -> None:
    """SQLite gives the next document the id of one rolled back: its uid, digest and
    time of receipt tell them apart."""
    rolled_back = replace(rich_report(), label="never stored")
    with pytest.raises(RuntimeError), open_store(db) as store:
        store.add_report(rolled_back, "d1")
        raise RuntimeError("the request fails after storing")
    assert add(db, rich_report(), "d1")
    assert read_here(db) == [rich_report()]


def test_what_was_decoded_is_not_taken_for_another_database(db: Engine, tmp_path: Path) -> None:
    """Same uid, same (made-up) digest, other content in another database: not the
    cached report."""
    other = create_engine(f"sqlite:///{tmp_path / 'other.db'}")
    migrate(other)
    try:
        assert add(db, rich_report(), "d1")
        assert stored_reports(db) == [rich_report()]
        elsewhere = replace(rich_report(), label="another report with the same uid")
        assert add(other, elsewhere, "d1")
        assert stored_reports(other) == [elsewhere]
    finally:
        other.dispose()


def test_redelivery_with_the_same_digest_stores_nothing(db: Engine) -> None:
    assert add(db, rich_report(), "d1")
    before = row_counts(db)
    assert not add(db, rich_report(), "d1")
    assert row_counts(db) == before


def test_same_uid_with_another_digest_conflicts_and_changes_nothing(db: Engine) -> None:
    assert add(db, rich_report(), "d1")
    before = row_counts(db)
    changed = replace(rich_report(), label="follow-up", lesions=())
    with pytest.raises(Conflict):
        add(db, changed, "d2")
    assert row_counts(db) == before
    assert stored_reports(db) == [rich_report()]


def test_a_study_stored_under_another_patient_is_an_identity_conflict(db: Engine) -> None:
    assert add(db, rich_report(), "d1")  # study 1.2.826.0.1.9 of P-001
    before = row_counts(db)
    intruder = replace(
        rich_report("1.2.826.0.1.2"), patient=PatientIdentity(DEFAULT_PATIENT_SYSTEM, "P-002")
    )
    with pytest.raises(IdentityConflict, match="1.2.826.0.1.9 is already stored under another"):
        add(db, intruder, "d2")
    issuer = replace(intruder, patient=PatientIdentity("urn:dicom:issuer:HOSP", "P-001"))
    with pytest.raises(IdentityConflict):  # the same PatientID from another issuer
        add(db, issuer, "d2")
    assert row_counts(db) == before
    # The same patient may send more documents of the study; other tenants, other
    # studies and documents without a study are not affected.
    assert add(db, replace(rich_report("1.2.826.0.1.3"), label="second reader"), "d3")
    assert add(db, intruder, "d2", tenant="b")
    assert add(db, replace(intruder, study_uid="1.2.826.0.1.10"), "d2")
    no_study = replace(intruder, source=SourceDocument("bundle-9", "fhir"), study_uid=None)
    assert add(db, no_study, "d4")


def _no_resources(_result: StoredResult) -> list[tuple[FhirRecord, int | None]]:
    return []


def test_an_exception_inside_open_store_rolls_everything_back(db: Engine) -> None:
    with pytest.raises(RuntimeError, match="boom"), open_store(db) as store:
        store.add_report(rich_report(), "d1")
        store.put_timepoint(PATIENT, BASELINE, "r1", _no_resources)
        raise RuntimeError("boom")
    assert set(row_counts(db).values()) == {0}


def test_unknown_patient_is_not_found(db: Engine) -> None:
    with pytest.raises(NotFound), open_store(db) as store:
        store.reports(PATIENT)


def test_tenants_are_stored_independently(db: Engine) -> None:
    assert add(db, rich_report(), "d1", tenant="a")
    assert add(db, rich_report(), "d2", tenant="b")
    assert stored_reports(db, "b") == [rich_report()]
    with pytest.raises(NotFound):
        stored_reports(db, "c")


def test_put_timepoint_versions_on_a_new_digest_only(db: Engine) -> None:
    add(db, rich_report(), "d1")
    with open_store(db) as store:
        first = store.put_timepoint(PATIENT, BASELINE, "r1", _no_resources)
    with open_store(db) as store:
        again = store.put_timepoint(PATIENT, BASELINE, "r1", _no_resources)
    with open_store(db) as store:
        second = store.put_timepoint(PATIENT, BASELINE, "r2", _no_resources)
    with open_store(db) as store:
        kept = store.put_timepoint(PATIENT, BASELINE, "r2", _no_resources)
        other_day = store.put_timepoint(PATIENT, BASELINE + timedelta(days=1), "r2", _no_resources)
    assert (first.version, first.changed) == (1, True)
    assert first.issued.utcoffset() == timedelta(0)
    assert again == StoredResult(1, first.issued, changed=False)
    assert (second.version, second.changed) == (2, True)
    assert second.issued >= first.issued
    assert kept == StoredResult(2, second.issued, changed=False)
    assert (other_day.version, other_day.changed) == (1, True)
    assert row_counts(db)["timepoint_result"] == 2


def test_results_of_unknown_patients_are_not_found(db: Engine) -> None:
    with pytest.raises(NotFound), open_store(db) as store:
        store.put_timepoint(PATIENT, BASELINE, "r1", _no_resources)
    assert row_counts(db)["timepoint_result"] == 0


def test_non_finite_numbers_are_refused_by_the_database(db: Engine) -> None:
    add_as_before_0006(db, rich_report(), "d1")
    with pytest.raises(IntegrityError), db.begin() as connection:
        lesion_id = connection.execute(sa.select(sa.func.min(lesion.c.id))).scalar_one()
        row = {"lesion_id": lesion_id, "position": 9, "kind": "long-axis", "path": ""}
        connection.execute(sa.insert(measurement), {**row, "value": Decimal("NaN")})


def test_a_report_its_encoding_refuses_writes_nothing_not_even_its_new_patient(
    db: Engine,
) -> None:
    nan = Measurement(MeasurementKind.LONG_AXIS, Decimal("1"))
    object.__setattr__(nan, "value", Decimal("NaN"))  # past the domain's own check
    refused = replace(
        rich_report(), lesions=(replace(rich_report().lesions[0], measurements=(nan,)),)
    )
    with open_store(db) as store, pytest.raises(ValueError, match="not stored"):
        store.add_report(refused, "d1")
    assert set(row_counts(db).values()) == {0}  # committed, and nothing in it
    with open_store(db) as store:
        assert store.add_report(plain_report(), "d2")
        store.put_timepoint(PATIENT, plain_report().date, "r1", _no_resources)
    assert stored_reports(db) == [plain_report()]
    assert row_counts(db)["patient"] == 1


def run_together(engine: Engine, reports: list[TimepointReport]) -> list[bool]:
    """Add each report from its own thread, all released at the same moment."""
    barrier = threading.Barrier(len(reports))

    def add_when_released(report: TimepointReport) -> bool:
        barrier.wait()
        return add(engine, report, f"digest-{report.source.uid}")

    with ThreadPoolExecutor(len(reports)) as pool:
        return list(pool.map(add_when_released, reports))


def test_concurrent_redelivery_stores_one_report(db: Engine) -> None:
    results = run_together(db, [rich_report()] * 8)
    assert sorted(results) == [False] * 7 + [True]
    assert row_counts(db)["document"] == 1
    assert stored_reports(db) == [rich_report()]


def test_concurrent_reports_of_a_new_patient_share_one_patient_row(db: Engine) -> None:
    reports = [plain_report(uid=f"bundle-{n}", day=BASELINE + timedelta(n)) for n in range(8)]
    assert run_together(db, reports) == [True] * 8
    assert row_counts(db)["patient"] == 1
    assert sorted(stored_reports(db), key=lambda r: r.date) == reports


@pytest.mark.sqlite_only("pragmas")
def test_sqlite_connections_are_durable_and_strict(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'store.db'}")
    try:
        with engine.connect() as connection:
            pragma = connection.exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar_one() == "wal"
            assert pragma("PRAGMA synchronous").scalar_one() == 2  # FULL
            assert pragma("PRAGMA foreign_keys").scalar_one() == 1
            assert pragma("PRAGMA busy_timeout").scalar_one() == 5000
    finally:
        engine.dispose()
    assert (tmp_path / "missing" / "dir" / "store.db").is_file()


def test_setting_round_trips(db: Engine) -> None:
    setting = ClinicalSetting(Primary.GIST, frozenset({Therapy.TKI, Therapy.OTHER}))
    add(db, replace(plain_report(), setting=setting), "d1")
    add(db, plain_report("bundle-3", date(2024, 4, 1)), "d2")
    assert [report.setting for report in stored_reports(db)] == [setting, None]


def _record(resource_id: str, body: bytes, day: date | None = None) -> FhirRecord:
    return FhirRecord("Observation", resource_id, body, PATIENT, "urn:x|" + resource_id, day)


def test_fhir_resources_version_on_change_and_are_searchable(db: Engine) -> None:
    with open_store(db) as store:
        first = store.put_resource(_record("o1", b'{"a":1}', BASELINE))
        same = store.put_resource(_record("o1", b'{"a":1}', BASELINE))
        changed = store.put_resource(_record("o1", b'{"a":2}', BASELINE))
        store.put_resource(_record("o2", b"{}", BASELINE + timedelta(days=30)))
        pinned = store.put_resource(_record("o3", b"{}"), version=7)
    assert (first.version, first.changed) == (1, True)
    assert (same.version, same.changed) == (1, False)
    assert (changed.version, changed.body) == (2, b'{"a":2}')
    assert pinned.version == 7
    with open_store(db) as store:
        assert store.resource("Observation", "o1").version == 2
        with pytest.raises(NotFound):
            store.resource("Observation", "o9")
        by_patient = store.search_resources("Observation", patient=PATIENT)
        later = store.search_resources("Observation", since=BASELINE + timedelta(days=1))
        by_identifier = store.search_resources("Observation", identifier="urn:x|o2")
        stranger = PatientIdentity(DEFAULT_PATIENT_SYSTEM, "nobody")
        assert store.search_resources("Observation", patient=stranger) == []
        assert store.search_resources("Observation", tenant="other") == []
    assert [r.resource_id for r in by_patient] == ["o1", "o2", "o3"]
    assert [r.resource_id for r in later] == ["o2"]
    assert [r.resource_id for r in by_identifier] == ["o2"]


def test_revision_0009_keeps_the_identifiers_searched_and_clears_the_others(
    engine: Engine,
) -> None:
    """Rows stored before revision 0009 keep their identifier only when their type is
    searched by it (fhir_index.SEARCHED_BY_IDENTIFIER), and are still found by it."""
    migrate(engine, "0008")
    kinds = {"o1": "Observation", "p1": "Patient", "b1": "BodyStructure", "d1": "DiagnosticReport"}
    with engine.begin() as connection:
        connection.execute(
            sa.insert(fhir_resource),
            [
                {
                    "tenant": "default",
                    "resource_type": kind,
                    "resource_id": resource_id,
                    "identifier": f"urn:x|{resource_id}",
                    "version": 1,
                    "last_updated": datetime.now(UTC),
                    "body": b"{}",
                }
                for resource_id, kind in kinds.items()
            ],
        )
    migrate(engine)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(fhir_resource.c.resource_id, fhir_resource.c.identifier)
        )
        kept = {row.resource_id: row.identifier for row in rows}
    assert kept == {"o1": "urn:x|o1", "p1": "urn:x|p1", "b1": None, "d1": None}
    with open_store(engine) as store:
        for resource_id in ("o1", "p1"):
            found = store.search_resources(kinds[resource_id], identifier=f"urn:x|{resource_id}")
            assert [row.resource_id for row in found] == [resource_id]


def test_revision_0010_keeps_the_named_ids_of_the_patients_stored_before_it(
    engine: Engine,
) -> None:
    """A patient stored before revision 0010 keeps IdScheme.NAMED (its resources keep
    their ids); one stored since gets the scheme of new patients (PATIENT_INDEXED since
    revision 0011), read back in a later transaction too; a patient not stored has none."""
    old, new = PatientIdentity("urn:x", "old"), PatientIdentity("urn:x", "new")
    migrate(engine, "0009")
    with engine.begin() as connection:
        connection.execute(
            sa.insert(patient_table), {"tenant": "default", "system": "urn:x", "value": "old"}
        )
    migrate(engine)
    with open_store(engine) as store:
        store.lock_patient(new)
        assert store.id_scheme(new) is IdScheme.PATIENT_INDEXED
        assert store.id_scheme(old) is IdScheme.NAMED
    with open_store(engine) as store:
        assert store.id_scheme(new) is IdScheme.PATIENT_INDEXED
        store.lock_patient(old)
        assert store.id_scheme(old) is IdScheme.NAMED
        with pytest.raises(NotFound):
            store.id_scheme(PatientIdentity("urn:x", "nobody"))


def _plan(db: Engine, query: sa.Select[Any]) -> str:
    """The database's plan for *query*, its values bound as the store binds them (on
    PostgreSQL with sequential scans priced out, as on a table of some size)."""
    compiled = query.compile(db)
    with db.begin() as connection:
        if db.dialect.name == "postgresql":
            connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
            plan = connection.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params).all()
        else:
            values = tuple(compiled.params[name] for name in compiled.positiontup or ())
            plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", values).all()
    return " ".join(str(row) for row in plan)


def test_a_search_by_identifier_uses_the_partial_index_on_it(db: Engine) -> None:
    """``identifier = ?`` implies the partial index's ``identifier IS NOT NULL`` on both
    databases, with the value bound as the store binds it."""
    r = fhir_resource
    query = sa.select(r.c.id).where(
        r.c.tenant == "default", r.c.resource_type == "Observation", r.c.identifier == "urn:x|1"
    )
    assert "ix_fhir_resource_identifier" in _plan(db, query)


def test_a_search_by_patient_uses_the_index_by_patient(db: Engine) -> None:
    """The store's search by patient (the tenant, the type, the patient's id of the
    tenant's) is served by ``ix_fhir_resource_patient`` on both databases, not by the
    unique index's (tenant, resource_type) alone, which would read every resource of
    that type in the tenant (an index by (patient_id, resource_type) got that plan)."""
    r, p = fhir_resource, patient_table
    patient_id = sa.select(p.c.id).where(
        p.c.tenant == "default", p.c.system == "urn:x", p.c.value == "P-1"
    )
    query = sa.select(r.c.id).where(
        r.c.tenant == "default",
        r.c.resource_type == "DiagnosticReport",
        r.c.patient_id.in_(patient_id),
    )
    assert "ix_fhir_resource_patient" in _plan(db, query)


def test_put_resources_batches_with_the_semantics_of_put_resource(db: Engine) -> None:
    with open_store(db) as store:
        store.put_resource(_record("o1", b'{"a":1}', BASELINE))
        store.put_resource(_record("o2", b'{"a":1}'))
        store.put_resource(_record("r1", b"{}"), version=3)
    with open_store(db) as store:
        batch = store.put_resources(
            [
                (_record("r1", b"{}"), 4),  # pinned: follows its result even unchanged
                (_record("o1", b'{"a":1}', BASELINE), None),  # unchanged
                (_record("o2", b'{"a":2}', BASELINE), None),  # changed: bumped
                (_record("o3", b"{}"), None),  # new
                (_record("o4", b"{}"), 9),  # new and pinned
            ]
        )
        again = store.put_resources([(_record("o3", b"{}"), None), (_record("o3", b"[]"), None)])
    assert [(r.resource_id, r.version, r.changed) for r in batch] == [
        ("r1", 4, True),
        ("o1", 1, False),
        ("o2", 2, True),
        ("o3", 1, True),
        ("o4", 9, True),
    ]
    assert [(r.version, r.changed) for r in again] == [(1, False), (2, True)]
    with open_store(db) as store:
        assert store.resource("Observation", "o2").body == b'{"a":2}'
        assert store.resource("Observation", "o3").body == b"[]"
        assert store.search_resources("Observation", since=BASELINE)[-1].resource_id == "o2"
        assert len(store.search_resources("Observation", patient=PATIENT)) == 5


def test_put_resources_matches_stored_rows_by_type_and_id(db: Engine) -> None:
    """A batch of several types, one id under two of them: each record meets the row of
    its own type (looked up one type at a time)."""

    def record(resource_type: str, resource_id: str, body: bytes) -> FhirRecord:
        return FhirRecord(resource_type, resource_id, body, PATIENT, None, None)

    with open_store(db) as store:
        store.put_resource(record("Observation", "x", b'{"o":1}'))
        store.put_resource(record("BodyStructure", "y", b'{"b":1}'))
    with open_store(db) as store:
        batch = store.put_resources(
            [
                (record("BodyStructure", "x", b'{"b":2}'), None),  # new: x is an Observation
                (record("Observation", "x", b'{"o":1}'), None),  # unchanged
                (record("BodyStructure", "y", b'{"b":3}'), None),  # changed
                (record("DiagnosticReport", "y", b"{}"), 5),  # new, pinned
            ]
        )
    assert [(r.resource_type, r.version, r.changed) for r in batch] == [
        ("BodyStructure", 1, True),
        ("Observation", 1, False),
        ("BodyStructure", 2, True),
        ("DiagnosticReport", 5, True),
    ]
    with open_store(db) as store:
        assert store.resource("BodyStructure", "x").body == b'{"b":2}'
        assert store.resource("Observation", "x").body == b'{"o":1}'


def test_concurrent_batches_of_the_same_new_resources_store_each_once(db: Engine) -> None:
    records = [(_record(f"c{n}", b'{"n":1}'), None) for n in range(5)]
    barrier = threading.Barrier(6)

    def put_when_released(_: int) -> list[tuple[str, int]]:
        barrier.wait()
        with open_store(db) as store:
            return [(r.resource_id, r.version) for r in store.put_resources(records)]

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(put_when_released, range(6)))
    assert results == [[(f"c{n}", 1) for n in range(5)]] * 6
    with open_store(db) as store:
        stored = store.search_resources("Observation")
    assert [(r.resource_id, r.version) for r in stored] == [(f"c{n}", 1) for n in range(5)]


def test_concurrent_batches_overlapping_in_part_store_each_resource_once(db: Engine) -> None:
    """Rows another transaction inserted first are skipped by the batch insert and
    stored as by put_resource; the batch's other rows are its own inserts."""
    shared = [(_record(f"s{n}", b'{"n":1}'), None) for n in range(3)]
    barrier = threading.Barrier(6)

    def put_when_released(k: int) -> list[tuple[str, int, bool]]:
        barrier.wait()
        with open_store(db) as store:
            stored = store.put_resources([*shared, (_record(f"own{k}", b"{}"), None)])
            return [(r.resource_id, r.version, r.changed) for r in stored]

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(put_when_released, range(6)))
    for k, result in enumerate(results):
        assert [(rid, version) for rid, version, _ in result] == [
            ("s0", 1),
            ("s1", 1),
            ("s2", 1),
            (f"own{k}", 1),
        ]
        assert result[-1][2]  # its own row: inserted by this batch
    # Each shared row was inserted (changed) by exactly one of the batches.
    assert [sum(result[n][2] for result in results) for n in range(3)] == [1, 1, 1]
    with open_store(db) as store:
        assert len(store.search_resources("Observation")) == 3 + 6


CONTEXT: dict[str, Any] = {
    "attributes": {"PatientID": "P-001", "PatientName": "Doe^Jane", "StudyDate": "20240115"},
    "evidence": [{"study": "1.2.3", "series": "1.2.3.4", "sop": "1.2.3.4.5", "sop_class": "1.2"}],
    "procedure_reported": [["25045-6", "LN", "CT unspecified body region"]],
}


def test_dicom_context_is_the_newest_of_the_day_that_has_one(db: Engine) -> None:
    newer = {**CONTEXT, "attributes": {**CONTEXT["attributes"], "StudyID": "2"}}
    with open_store(db) as store:
        assert store.add_report(rich_report("1.2.1"), "d1", dicom_context=CONTEXT)
        assert store.add_report(rich_report("1.2.2"), "d2", dicom_context=newer)
        assert store.add_report(plain_report("fhir-1", BASELINE), "d3")  # no context
        assert store.add_report(rich_report("1.2.4", BASELINE + timedelta(days=60)), "d4")
    with open_store(db) as store:
        assert store.dicom_context(PATIENT, BASELINE) == newer
        assert store.dicom_context(PATIENT, BASELINE + timedelta(days=60)) is None
        assert store.dicom_context(PATIENT, BASELINE - timedelta(days=1)) is None
        assert store.dicom_context(PatientIdentity("other", "P-001"), BASELINE) is None


def test_documents_without_context_store_sql_null(db: Engine) -> None:
    add(db, rich_report(), "d1")
    with db.connect() as connection:
        stored = connection.execute(
            sa.select(sa.func.count()).where(document.c.dicom_context.is_(None))
        ).scalar_one()
    assert stored == 1


def test_json_columns_are_written_compact_by_orjson(db: Engine) -> None:
    """orjson writes the JSON columns (a tenth of the standard library's CPU; issue 7):
    the text stored is its compact form, and reads back as what was given."""
    report = replace(rich_report(), warnings=("naïve: ≥ 5 mm", "second warning"))
    add(db, report, "d1")
    with db.connect() as connection:
        text = connection.execute(sa.select(sa.cast(document.c.warnings, sa.Text))).scalar_one()
    assert text == '["naïve: ≥ 5 mm","second warning"]'
    assert stored_reports(db) == [report]


def test_patients_lists_those_with_reports_in_the_tenant_sorted(db: Engine) -> None:
    other = PatientIdentity("urn:other", "Z9")
    add(db, replace(rich_report(), patient=other, study_uid="1.2.826.0.1.19"), "d1")
    add(db, rich_report("1.2.826.0.1.2"), "d2")
    add(db, replace(rich_report("1.2.826.0.1.3"), patient=PatientIdentity("urn:b", "B")), "d3", "b")
    with open_store(db) as store:
        store.put_resource(  # a Patient known only to the FHIR index has no reports
            FhirRecord("Patient", "p-only", b"{}", patient=PatientIdentity("urn:x", "X"))
        )
        assert store.patients() == [other, PATIENT]  # by system, then value
        assert store.patients("b") == [PatientIdentity("urn:b", "B")]
        assert store.patients("empty") == []
