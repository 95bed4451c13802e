"""The parts of the use-case layer (service/services.py) that need no database."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any, cast

from service.adapters.db import FhirRecord, Store, StoredResult
from service.domain.model import (
    DEFAULT_PATIENT_SYSTEM,
    AssessmentParameters,
    PatientIdentity,
    TimepointReport,
)
from service.services import Change, Inbound, Tally, assess_reports, fresh_attempt
from tests.builders import tp

PATIENT = PatientIdentity(DEFAULT_PATIENT_SYSTEM, "P-1")


class RecordingStore:
    """The store calls of :func:`assess_reports`, in memory: it keeps the reports and
    notes what each ``put_resources`` call indexes, as (resource type, wanted version)."""

    def __init__(self) -> None:
        self.stored: list[TimepointReport] = []
        self.batches: list[list[tuple[str, int | None]]] = []

    def lock_patient(self, patient: PatientIdentity, tenant: str) -> None:
        pass

    def add_report(self, report: TimepointReport, digest: str, tenant: str, **_: Any) -> bool:
        self.stored.append(report)
        return True

    def reports(self, patient: PatientIdentity, tenant: str) -> list[TimepointReport]:
        return [report for report in self.stored if report.patient == patient]

    def put_result(self, *_: Any) -> StoredResult:
        return StoredResult(1, datetime(2024, 6, 1, tzinfo=UTC), changed=True)

    def put_resources(
        self, records: Sequence[tuple[FhirRecord, int | None]], tenant: str
    ) -> list[Any]:
        if records:
            self.batches.append([(record.resource_type, version) for record, version in records])
        return []


def test_a_retried_attempt_forgets_what_the_rolled_back_one_noted_and_keeps_earlier_counts():
    tally = Tally(new=2, redelivered=1, verdicts=[("recist-1.1", "PR")])  # an earlier entry
    changed: list[Change] = []
    forget = fresh_attempt(changed, tally)
    # the first attempt notes its work, then its transaction rolls back
    tally.new += 1
    tally.verdicts.append(("recist-1.1", "PD"))
    changed.append(("default", PATIENT, date(2024, 3, 1)))
    forget()
    assert (tally.new, tally.redelivered, tally.verdicts, changed) == (
        2,
        1,
        [("recist-1.1", "PR")],
        [],
    )


def test_without_a_tally_only_the_changes_are_forgotten():
    changed: list[Change] = [("default", PATIENT, date(2024, 3, 1))]
    fresh_attempt(changed, None)()
    assert changed == []


def test_the_patient_resource_is_indexed_once_in_the_batch_of_the_first_timepoint():
    store = RecordingStore()

    def ingest(*reports: TimepointReport) -> None:
        inbound = [Inbound(report, report.source.uid) for report in reports]
        params = AssessmentParameters()
        assess_reports(cast(Store, store), inbound, (), params, "http://x", tenant="t")

    ingest(tp("2024-05-01", 40))
    store.batches.clear()
    # two earlier timepoints arrive together: the stored later one is assessed again first
    ingest(tp("2024-01-15", 50), tp("2024-03-01", 45))
    firsts = [batch[:2] for batch in store.batches]
    assert firsts == [[("Patient", None), ("DiagnosticReport", 1)]] + 2 * [
        [("DiagnosticReport", 1), ("Observation", None)]
    ]
    assert [kind for batch in store.batches for kind, _ in batch].count("Patient") == 1
