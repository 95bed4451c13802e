"""The parts of the use-case layer (service/services.py) that need no database."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any, cast

from service import services
from service.adapters.db import Store, StoredHistory, StoredResult
from service.adapters.fhir_record import FhirRecord
from service.adapters.fhir_writer import IdScheme
from service.domain.criteria import mrecist, recist11
from service.domain.model import (
    DEFAULT_PATIENT_SYSTEM,
    AssessmentParameters,
    PatientIdentity,
    TimepointReport,
)
from service.services import Change, Inbound, Tally, assess_reports, fresh_attempt
from tests.builders import history, lesion, report, tp

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

    def history(self, patient: PatientIdentity, tenant: str) -> StoredHistory:
        return StoredHistory(None, self.reports(patient, tenant), ())  # never resumed

    def save_checkpoint(self, *_: Any) -> None:
        pass

    def id_scheme(self, patient: PatientIdentity, tenant: str) -> IdScheme:
        return IdScheme.PATIENT_INDEXED

    def put_resources(
        self, records: Sequence[tuple[FhirRecord, int | None]], tenant: str
    ) -> list[Any]:
        if records:
            self.batches.append([(record.resource_type, version) for record, version in records])
        return []

    def put_timepoint(
        self,
        patient: PatientIdentity,
        day: date,
        digest: str,
        resources: Callable[[StoredResult], Sequence[tuple[FhirRecord, int | None]]],
        tenant: str,
    ) -> StoredResult:
        stored = StoredResult(1, datetime(2024, 6, 1, tzinfo=UTC), changed=True)
        self.put_resources(resources(stored), tenant)
        return stored


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


def test_the_patient_resource_is_indexed_once_before_the_first_timepoint():
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
    assert firsts == [[("Patient", None)]] + 3 * [[("DiagnosticReport", 1), ("Observation", None)]]
    assert [kind for batch in store.batches for kind, _ in batch].count("Patient") == 1


def _viable_reports() -> list[TimepointReport]:
    """An HCC target whose viable part shrinks, then grows back, over six timepoints."""
    viable = [30, 24, 20, 18, 19, 25]
    return [
        report(f"2024-{2 * n + 1:02d}-01", lesion("T1", 40, viable=value), lesion("T2", 30))
        for n, value in enumerate(viable)
    ]


def test_mrecist_is_resumed_from_its_fold_with_the_assessment_from_scratch() -> None:
    reports = _viable_reports()
    for params in (AssessmentParameters(), AssessmentParameters(mrecist_pd_5mm=True)):
        earlier: recist11.Fold | None = None
        for end in range(1, len(reports) + 1):
            found = history(*reports[:end])
            assessment, _fold = services._assessment(mrecist.CRITERION, found, params)
            assert assessment == mrecist.assess(found, params)
            fold = services._FOLDS.get((found.patient, mrecist.CRITERION))
            assert fold is not None and fold.rules is mrecist.rules(params)
            if earlier is not None and earlier.params == params:
                # Appending a timepoint evaluates that timepoint alone.
                assert all(a is b for a, b in zip(fold.steps, earlier.steps, strict=False))
                assert len(fold.steps) == len(earlier.steps) + 1
            earlier = fold


def test_each_size_criterion_keeps_its_own_fold_of_a_patient() -> None:
    found = history(*_viable_reports())
    params = AssessmentParameters()
    for criterion in (recist11.CRITERION, mrecist.CRITERION):
        services._assessment(criterion, found, params)
    recist_fold = services._FOLDS.get((found.patient, recist11.CRITERION))
    mrecist_fold = services._FOLDS.get((found.patient, mrecist.CRITERION))
    assert recist_fold is not None and recist_fold.rules is recist11.RULES
    assert mrecist_fold is not None and mrecist_fold.rules is mrecist.rules(params)
