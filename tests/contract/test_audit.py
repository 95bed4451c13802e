"""The audit trail in the unit of work (issue 6; reliability.md section 7): an AuditEvent
is saved in the transaction of the data it records, once per request, and searched by
tenant."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from service.adapters import audit, db, fhir_index
from service.adapters.db_schema import audit_event, audit_patient, document
from tests.builders import tp
from tests.fhir_validation import validate_resource


@pytest.fixture
def engine(migrated_engine: Engine) -> Engine:
    return migrated_engine


def _trail() -> audit.Trail:
    return audit.Trail(type=audit.REST, action="C", address="10.1.2.3", requestor="client-1")


def _count(engine: Engine, table: sa.Table) -> int:
    with engine.connect() as connection:
        count: int = connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
        return count


def _stored(engine: Engine) -> list[bytes]:
    return audit.search(engine, audit.Query())[1]


def test_a_write_commits_its_audit_event_with_its_rows(engine: Engine) -> None:
    trail = _trail()
    with audit.recording(trail), db.open_store(engine) as store:
        store.add_report(tp("2024-01-05", 50), "d1")
    assert _count(engine, document) == 1
    (body,) = _stored(engine)
    event = fhir_index.loads(body)
    validate_resource(event)
    assert event["id"] == trail.event_id and event["outcome"] == "0"
    assert event["agent"][0]["who"] == {"identifier": {"value": "client-1"}}
    assert _count(engine, audit_patient) == 1


def test_a_rolled_back_write_leaves_neither_rows_nor_audit(engine: Engine) -> None:
    trail = _trail()
    with (
        pytest.raises(RuntimeError, match="injected"),
        audit.recording(trail),
        db.open_store(engine) as store,
    ):
        store.add_report(tp("2024-01-05", 50), "d1")
        raise RuntimeError("injected between the data rows and the commit")
    assert _count(engine, document) == 0 and _count(engine, audit_event) == 0
    trail.fail(audit.Outcome.SERIOUS_FAILURE, "HTTP 500")
    audit.save_alone(trail, engine)  # the entrypoint records the failure on its own
    (body,) = _stored(engine)
    assert fhir_index.loads(body)["outcome"] == "8"


def test_one_event_per_trail_however_many_transactions(engine: Engine) -> None:
    trail = _trail()
    with audit.recording(trail):
        for day in ("2024-01-05", "2024-03-05"):
            with db.open_store(engine) as store:
                store.add_report(tp(day, 50), f"d-{day}")
    trail.fail(audit.Outcome.MINOR_FAILURE, "HTTP 404")
    audit.save_alone(trail, engine)
    audit.save_alone(trail, engine)  # unchanged: nothing to do
    (body,) = _stored(engine)
    event = fhir_index.loads(body)
    assert event["outcome"] == "4" and event["outcomeDesc"] == "HTTP 404"
    assert len([e for e in event["entity"] if "identifier" in e["what"]]) == 3  # 2 docs, 1 patient


def test_search_is_confined_to_the_tenant(engine: Engine) -> None:
    audit.save_alone(_trail(), engine)
    other = _trail()
    other.tenant = "b"
    audit.save_alone(other, engine)
    assert audit.search(engine, audit.Query(tenant="b"))[0] == 1
    assert audit.search(engine, audit.Query(tenant="c")) == (0, [])


def test_an_unsaved_event_is_logged_without_its_content(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken = sa.create_engine("sqlite:////proc/no-such-dir/x.db")  # a database that is gone
    trail = _trail()
    with caplog.at_level(logging.ERROR):
        audit.save_alone(trail, broken)
    (record,) = caplog.records
    assert record.getMessage() == "audit event not stored (OperationalError)"


def test_a_saved_event_is_built_again_only_once_it_changed(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    trail = _trail()
    audit.save_alone(trail, engine)
    built: list[str] = []
    build = audit.Trail.resource

    def counted(self: audit.Trail) -> audit.Resource:
        built.append(self.event_id)
        return build(self)

    monkeypatch.setattr(audit.Trail, "resource", counted)
    assert trail.unsaved() is None and built == []  # unchanged: not built, not serialised
    with audit.recording(trail):
        audit.note_instance("1.2.3.4")
    assert trail.unsaved() is not None and len(built) == 1
    audit.save_alone(trail, engine)
    trail.fail(audit.Outcome.MINOR_FAILURE, "HTTP 404")
    assert trail.unsaved() is not None
    assert audit.search(engine, audit.Query())[0] == 1
