"""service.adapters.pacs_push against real peers on loopback: a STOW-RS origin server
(PS3.18 10.5) and a pynetdicom C-STORE SCP (PS3.4 B.2); the background worker's bounded
queue and retries (service.entrypoints.push_worker) with the real database."""

from __future__ import annotations

import logging
import re
from datetime import date

import pytest
from sqlalchemy import Engine

from service import services
from service.adapters import content_digest, db, pacs_push, sr_context, sr_reader
from service.domain.model import DEFAULT_PATIENT_SYSTEM, AssessmentParameters, PatientIdentity
from service.entrypoints.push_worker import Destination, PushWorker
from tests.pacs_receivers import closed_port, cstore_receiver, stow_receiver, wait_for
from tests.sr_factory import LesionSpec, make_sr, sr_bytes

DATASET = make_sr(patient_id="RETRY-1", study_date="20240105", lesions=[LesionSpec("T1", 30)])
SR, UID = sr_bytes(DATASET), str(DATASET.SOPInstanceUID)
TENANT = "push-tenant"  # not the default one: the worker must build the SR in this tenant


def test_stow_posts_one_dicom_part_to_studies() -> None:
    with stow_receiver() as receiver:
        pacs_push.stow(receiver.url, SR, timeout=10)
    assert [str(ds.SOPInstanceUID) for ds in receiver.received] == [UID]
    (content_type,) = receiver.content_types
    assert content_type.startswith('multipart/related; type="application/dicom"; boundary=')


def test_stow_202_without_failures_is_stored() -> None:
    with stow_receiver() as receiver:
        receiver.status = 202
        receiver.answer = {"00081199": {"vr": "SQ", "Value": [{}]}}
        pacs_push.stow(receiver.url, SR, timeout=10)  # no PushFailed


@pytest.mark.parametrize(
    ("status", "answer"),
    [(409, {}), (202, {"00081198": {"vr": "SQ", "Value": [{}]}}), (500, {}), (404, {})],
)
def test_stow_refusal_raises(status: int, answer: dict[str, object]) -> None:
    with stow_receiver() as receiver:
        receiver.status, receiver.answer = status, answer
        with pytest.raises(pacs_push.PushFailed, match=str(status)):
            pacs_push.stow(receiver.url, SR, timeout=10)


def test_stow_unreachable_raises() -> None:
    with pytest.raises(pacs_push.PushFailed, match="ConnectError"):
        pacs_push.stow(f"http://127.0.0.1:{closed_port()}/dicom-web", SR, timeout=5)


def test_cstore_sends_with_our_calling_ae_title() -> None:
    with cstore_receiver() as receiver:
        target = pacs_push.DimseTarget.parse(receiver.address)
        pacs_push.cstore(target, "TR_PUSHER", SR, timeout=10)
    assert [str(ds.SOPInstanceUID) for ds in receiver.received] == [UID]
    assert receiver.calling == ["TR_PUSHER"]


def test_cstore_failure_status_raises() -> None:
    with cstore_receiver() as receiver:
        receiver.status = 0xA700
        target = pacs_push.DimseTarget.parse(receiver.address)
        with pytest.raises(pacs_push.PushFailed, match="0xA700"):
            pacs_push.cstore(target, "TR_PUSHER", SR, timeout=10)


# pynetdicom 3.0 leaves the socket of a refused connection to the garbage collector.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_cstore_unreachable_raises() -> None:
    target = pacs_push.DimseTarget("NOBODY", "127.0.0.1", closed_port())
    with pytest.raises(pacs_push.PushFailed, match="association not established"):
        pacs_push.cstore(target, "TR_PUSHER", SR, timeout=5)


def test_dimse_target_parse() -> None:
    assert pacs_push.DimseTarget.parse("PACS@pacs.example:104") == pacs_push.DimseTarget(
        "PACS", "pacs.example", 104
    )
    with pytest.raises(pacs_push.PushFailed):
        pacs_push.DimseTarget.parse("pacs.example:104")


def test_instance_uid() -> None:
    assert pacs_push.instance_uid(SR) == UID


def _changes(count: int) -> list[services.Change]:
    return [
        (TENANT, PatientIdentity(DEFAULT_PATIENT_SYSTEM, f"QUEUE-{n}"), date(2024, 1, 1))
        for n in range(count)
    ]


def test_full_queue_drops_with_a_warning(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    with stow_receiver() as receiver:
        destination = Destination("test", lambda sr: pacs_push.stow(receiver.url, sr, timeout=5))
        worker = PushWorker(engine, [destination], capacity=2)  # not started: nothing is taken
        with caplog.at_level(logging.WARNING):
            worker.submit(_changes(5), (), AssessmentParameters(), None)
    assert worker.dropped == 3
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3 and "queue full (2 jobs)" in warnings[0].getMessage()
    assert "QUEUE-" not in caplog.text  # no patient in the logs


def _ingest(engine: Engine, *, context: bool = True) -> list[services.Change]:
    """Store and assess the SR of RETRY-1 (with or without its DICOM context)."""
    report = sr_reader.read_sr(DATASET, patient_system=DEFAULT_PATIENT_SYSTEM)
    extracted = sr_context.extract(DATASET) if context else None
    inbound = services.Inbound(report, content_digest.digest(SR), dicom_context=extracted)
    changed: list[services.Change] = []
    with db.open_store(engine) as store:
        services.assess_reports(
            store,
            [inbound],
            [],
            AssessmentParameters(),
            "http://test",
            changed=changed,
            tenant=TENANT,
        )
    return changed


@pytest.fixture
def engine(migrated_engine: Engine) -> Engine:
    return migrated_engine


def test_changed_lists_new_results_only(engine: Engine) -> None:
    assert _ingest(engine) == [
        (TENANT, PatientIdentity(DEFAULT_PATIENT_SYSTEM, "RETRY-1"), date(2024, 1, 5))
    ]
    assert _ingest(engine) == []  # the same result again: no new version, nothing to push


def test_unreachable_destination_retried_then_logged(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    changed = _ingest(engine)
    attempts: list[str] = []
    url = f"http://127.0.0.1:{closed_port()}/dicom-web"

    def send(sr: bytes) -> None:
        attempts.append(pacs_push.instance_uid(sr))
        pacs_push.stow(url, sr, timeout=5)

    worker = PushWorker(engine, [Destination("nowhere", send)], capacity=4, backoff=0.01)
    worker.start()
    with caplog.at_level(logging.INFO):
        worker.submit(changed, (), AssessmentParameters(), None)
        wait_for(lambda: any(r.levelno == logging.ERROR for r in caplog.records), "the error")
    worker.stop(timeout=10)
    assert len(attempts) == 3 and len(set(attempts)) == 1  # the same SR, three times
    (error,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert error.startswith(f"SR {attempts[0]} not pushed to nowhere after 3 attempts")
    assert "RETRY-1" not in caplog.text


def test_timepoint_without_dicom_context_is_skipped(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    changed = _ingest(engine, context=False)
    with stow_receiver() as receiver:
        destination = Destination("test", lambda sr: pacs_push.stow(receiver.url, sr, timeout=5))
        worker = PushWorker(engine, [destination], capacity=4)
        worker.start()
        with caplog.at_level(logging.INFO):
            worker.submit(changed, (), AssessmentParameters(), None)
            wait_for(lambda: "without DICOM context" in caplog.text, "the skip log")
        worker.stop(timeout=10)
    assert receiver.received == [] and not receiver.arrived.is_set()


def test_a_failing_job_is_logged_and_the_worker_goes_on(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    unmigrated = db.create_engine(database_url)  # no tables
    worker = PushWorker(unmigrated, [Destination("unused", lambda sr: None)], capacity=4)
    worker.start()
    with caplog.at_level(logging.ERROR):
        worker.submit(_changes(2), (), AssessmentParameters(), None)
        wait_for(lambda: len(caplog.records) == 2, "two errors")
    # a missing table: OperationalError on SQLite, ProgrammingError on PostgreSQL
    built = re.compile(r"could not be built \((OperationalError|ProgrammingError)\)")
    assert all(built.search(r.getMessage()) for r in caplog.records)
    worker.stop(timeout=10)
    unmigrated.dispose()
