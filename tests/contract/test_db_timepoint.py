"""A timepoint's generated FHIR resources kept in its result row (issue 7): the codec
(service.adapters.timepoint_codec), Store.put_timepoint and the reads of the FHIR face
(Store.resource, Store.search_resources) over them, and the patients stored before
revision 0011, whose resources stay rows of the resource index."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Engine

from service import services
from service.adapters import db, fhir_index, timepoint_codec
from service.adapters.db import StoredResult, create_engine, migrate, open_store
from service.adapters.db_schema import fhir_resource, timepoint_result
from service.adapters.fhir_record import FhirRecord
from service.adapters.fhir_writer import IdScheme, namer
from service.domain.errors import NotFound
from service.domain.model import AssessmentParameters, PatientIdentity, TimepointReport
from tests.builders import lesion, report
from tests.databases import statements_run

PATIENT = PatientIdentity("urn:x", "P-1")
DAY = date(2024, 1, 15)
NOW = datetime(2024, 6, 1, tzinfo=UTC)


def _ids(patient: PatientIdentity = PATIENT, day: date = DAY) -> dict[str, str]:
    name = namer(patient, IdScheme.PATIENT_INDEXED)
    return {kind: name(day, kind) for kind in ("report", "size", "lesion")}


def _records(
    day: date = DAY, size: bytes = b'{"v":1}', patient: PatientIdentity = PATIENT, version: int = 1
) -> list[tuple[FhirRecord, int | None]]:
    """A timepoint's report (wanted at its result's *version*), a dated Observation and an
    undated BodyStructure, as services._timepoint gives them."""
    ids = _ids(patient, day)
    return [
        (FhirRecord("DiagnosticReport", ids["report"], b'{"r":1}', patient, None, day), version),
        (FhirRecord("Observation", ids["size"], size, patient, None, day), None),
        (FhirRecord("BodyStructure", ids["lesion"], b'{"b":1}', patient, None, None), None),
    ]


def _put(
    engine: Engine,
    day: date = DAY,
    size: bytes = b'{"v":1}',
    patient: PatientIdentity = PATIENT,
    digest: str = "digest",
) -> StoredResult:
    """Store.put_timepoint of :func:`_records` for the result it puts."""
    with open_store(engine) as store:
        store.lock_patient(patient)
        return store.put_timepoint(
            patient, day, digest, lambda result: _records(day, size, patient, result.version)
        )


def _index_rows(engine: Engine) -> int:
    with engine.connect() as connection:
        query = sa.select(sa.func.count()).select_from(fhir_resource)
        count: int = connection.execute(query).scalar_one()
        return count


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An empty database, not migrated."""
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


# -- the codec ------------------------------------------------------------------------


def test_items_are_kept_compressed_and_read_back_as_written() -> None:
    items, changed = timepoint_codec.merged([], _records(), DAY, NOW)
    assert changed == [True, True, True]
    column = timepoint_codec.encode(items)
    assert zlib.decompress(column).split(b"\n")[1:] == [b'{"r":1}', b'{"v":1}', b'{"b":1}']
    assert timepoint_codec.decode(column) == items
    assert [(i.version, i.dated) for i in items] == [(1, True), (1, True), (1, False)]
    ids = timepoint_codec.resource_ids(items)
    assert all(f" {item.resource_id} " in ids for item in items)


@pytest.mark.parametrize(
    "column",
    [
        zlib.compress(b'{"v":2,"items":[]}'),
        zlib.compress(b'{"v":1,"items":[["Observation","o",1,"2024-01-01T00:00:00",true]]}'),
        zlib.compress(b"not json"),
        b"\x00not zlib",
    ],
    ids=["other layout", "a body missing", "no header", "not compressed"],
)
def test_a_column_of_another_layout_or_damaged_is_refused(column: bytes) -> None:
    with pytest.raises(ValueError):
        timepoint_codec.decode(column)


def test_versions_follow_the_bodies_and_the_wanted_version() -> None:
    """A resource whose body is unchanged keeps its version and time; a changed one is
    bumped, unless a version is wanted (the report follows its result's); a resource
    the records no longer name is kept."""
    first, _ = timepoint_codec.merged([], _records(), DAY, NOW)
    later = NOW + timedelta(days=1)
    again, changed = timepoint_codec.merged(first, _records(), DAY, later)
    assert (again, changed) == (first, [False, False, False])
    records = _records(size=b'{"v":2}', version=2)
    bumped, changed = timepoint_codec.merged(first, records[:2], DAY, later)
    assert changed == [True, True]
    assert [(i.resource_type, i.version) for i in bumped] == [
        ("DiagnosticReport", 2),
        ("Observation", 2),
        ("BodyStructure", 1),
    ]
    assert bumped[1].last_updated == later and bumped[2] == first[2]


def test_a_resource_dated_other_than_its_timepoint_or_not_of_one_is_refused() -> None:
    with pytest.raises(ValueError, match="dated"):
        timepoint_codec.merged([], _records(day=DAY + timedelta(days=1)), DAY, NOW)
    patient = [(FhirRecord("Patient", "p", b"{}", PATIENT), None)]
    with pytest.raises(ValueError, match="Patient"):
        timepoint_codec.merged([], patient, DAY, NOW)


# -- the store --------------------------------------------------------------------------


def test_a_new_patients_timepoint_is_one_row_read_by_id_and_versioned(
    migrated_engine: Engine,
) -> None:
    first = _put(migrated_engine)
    assert (first.version, first.changed) == (1, True)
    assert _index_rows(migrated_engine) == 0
    ids = _ids()
    with open_store(migrated_engine) as store:
        found = store.resource("Observation", ids["size"])
        assert (found.version, found.body) == (1, b'{"v":1}')
        for kind, resource_id in [
            ("DiagnosticReport", ids["size"]),  # another type under that id
            ("Observation", ids["size"].upper()),
            ("Observation", ids["size"][:-1] + "%"),
            ("Observation", "not-a-uuid"),
        ]:
            with pytest.raises(NotFound):
                store.resource(kind, resource_id)
        with pytest.raises(NotFound):
            store.resource("Observation", ids["size"], tenant="other")
    # Delivered again: nothing changes. Assessed again with another content: the report
    # follows its result's version, a changed body is bumped, an unchanged one kept.
    assert _put(migrated_engine) == replace(first, changed=False)
    second = _put(migrated_engine, size=b'{"v":2}', digest="digest-2")
    assert (second.version, second.changed) == (2, True)
    with open_store(migrated_engine) as store:
        versions = {
            kind: store.resource(kind, ids[name]).version
            for kind, name in [
                ("DiagnosticReport", "report"),
                ("Observation", "size"),
                ("BodyStructure", "lesion"),
            ]
        }
    assert versions == {"DiagnosticReport": 2, "Observation": 2, "BodyStructure": 1}
    assert _index_rows(migrated_engine) == 0


def test_searches_find_kept_resources_beside_the_index_rows(migrated_engine: Engine) -> None:
    """By patient and date bounds (an undated BodyStructure only without bounds), dated
    ones by date, a received Observation's row before those generated on its date."""
    later = DAY + timedelta(weeks=8)
    _put(migrated_engine)
    _put(migrated_engine, later)
    other = PatientIdentity("urn:x", "P-2")
    _put(migrated_engine, patient=other)
    received = FhirRecord("Observation", "received-1", b"{}", PATIENT, "urn:x|r", later)
    with open_store(migrated_engine) as store:
        store.put_resource(received)
        observations = store.search_resources("Observation", patient=PATIENT)
        bounded = store.search_resources("Observation", patient=PATIENT, since=later)
        structures = store.search_resources("BodyStructure", patient=PATIENT)
        bounded_structures = store.search_resources("BodyStructure", since=DAY)
        everyone = store.search_resources("DiagnosticReport", until=DAY)
        by_identifier = store.search_resources("Observation", identifier="urn:x|r")
        assert store.search_resources("DiagnosticReport", tenant="other") == []
    assert [r.resource_id for r in observations] == [
        _ids()["size"],
        "received-1",
        _ids(day=later)["size"],
    ]
    assert [r.resource_id for r in bounded] == ["received-1", _ids(day=later)["size"]]
    assert [r.resource_id for r in structures] == [_ids()["lesion"], _ids(day=later)["lesion"]]
    assert bounded_structures == []
    assert {r.resource_id for r in everyone} == {_ids()["report"], _ids(other)["report"]}
    assert [r.resource_id for r in by_identifier] == ["received-1"]


def test_an_ingest_keeps_a_timepoint_in_its_result_row_and_the_fhir_face_reads_it(
    migrated_engine: Engine,
) -> None:
    """Through services.assess_reports: the index holds the Patient alone; every
    resource of the answer is read back by id with the answer's version."""
    sr = report("2024-01-15", lesion("T1", 30), lesion("T2", 20))
    with open_store(migrated_engine) as store:
        bundle = services.assess_reports(
            store,
            [services.Inbound(sr, "digest-1")],
            [],
            AssessmentParameters(),
            "http://x",
            tenant="default",
        )
    resources = [entry["resource"] for entry in bundle["entry"]]
    with migrated_engine.connect() as connection:
        kinds = connection.execute(sa.select(fhir_resource.c.resource_type)).scalars().all()
        kept = connection.execute(sa.select(timepoint_result.c.resource_ids)).scalar_one()
    assert kinds == ["Patient"]
    assert all(f" {resource['id']} " in kept for resource in resources)
    with open_store(migrated_engine) as store:
        for resource in resources:
            found = store.resource(resource["resourceType"], resource["id"])
            assert str(found.version) == resource.get("meta", {}).get("versionId", "1")
            assert found.body == fhir_index.record(resource, sr.patient).body


def _assess(engine: Engine, *reports: TimepointReport) -> list[str]:
    """The statements of services.assess_reports of *reports*, each its own document."""
    inbound = [services.Inbound(found, found.source.uid) for found in reports]
    with statements_run(engine) as seen, open_store(engine) as store:
        services.assess_reports(
            store, inbound, [], AssessmentParameters(), "http://x", tenant="default"
        )
    return seen


def test_a_new_patients_sr_needs_no_select_of_what_its_transaction_wrote(
    migrated_engine: Engine,
) -> None:
    """Its result row is inserted with its resources; its history is the documents the
    transaction added; its Patient resource is inserted without a SELECT of the index;
    at its next timepoint the Patient resource, indexed, is not written again (issue 7)."""
    seen = _assess(migrated_engine, report("2024-01-15", lesion("T1", 30)))
    assert [s.split(" (")[0] for s in seen if "timepoint_result" in s] == [
        "INSERT INTO timepoint_result"
    ]
    assert not [s for s in seen if s.startswith("SELECT") and "FROM fhir_resource" in s]
    assert not [s for s in seen if s.startswith("SELECT document.id")]
    follow_up = _assess(migrated_engine, report("2024-03-15", lesion("T1", 20)))
    assert [s for s in follow_up if s.startswith("SELECT document.id")]  # a stored history
    assert not [s for s in follow_up if "fhir_resource" in s]
    with open_store(migrated_engine) as store:
        assert len(store.search_resources("Patient")) == 1
        assert len(store.search_resources("DiagnosticReport")) == 2


def test_a_patient_stored_before_revision_0011_keeps_its_resources_as_rows(
    engine: Engine,
) -> None:
    """Its timepoints, new or assessed again, are rows of the index, as before."""
    old = PatientIdentity("urn:x", "old")
    migrate(engine, "0010")
    with engine.begin() as connection:  # as the code of revision 0010 stored it
        connection.execute(
            sa.text(
                "INSERT INTO patient (tenant, system, value, id_scheme)"
                " VALUES ('default', 'urn:x', 'old', 1)"
            )
        )
    migrate(engine)
    with open_store(engine) as store:
        assert store.id_scheme(old) is IdScheme.PATIENT_PREFIXED
    _put(engine, patient=old)
    assert _index_rows(engine) == 3
    with engine.connect() as connection:
        assert connection.execute(sa.select(timepoint_result.c.resources)).scalar() is None
    with open_store(engine) as store:
        found = store.resource("Observation", _ids(old)["size"])
    assert found.version == 1


def test_a_downgrade_to_revision_0010_gives_its_patients_the_scheme_it_knows(
    migrated_engine: Engine,
) -> None:
    """Scheme 2 names ids as scheme 1 does, and revision 0010 knows 1 only."""
    _put(migrated_engine)
    config = db._alembic_config()
    with migrated_engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0010")
    with migrated_engine.connect() as connection:
        schemes = connection.execute(sa.text("SELECT id_scheme FROM patient")).scalars()
        assert list(schemes) == [int(IdScheme.PATIENT_PREFIXED)]
    migrate(migrated_engine)
    with open_store(migrated_engine) as store:
        assert store.id_scheme(PATIENT) is IdScheme.PATIENT_PREFIXED
