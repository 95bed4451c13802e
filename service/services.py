"""Use cases. Each function is one thing a caller can ask of the service; none knows
which transport called it.

Every use case works inside one *tenant* (the caller's: a token claim, or the configured
one), passed to every store call: another tenant's rows are never read, written or
confirmed to exist (reliability.md section 3, tenant isolation).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from service.adapters import fhir_index, fhir_writer, report_render
from service.adapters.bounded_cache import BoundedCache
from service.adapters.content_digest import digest
from service.adapters.db import Store, StoredResult
from service.adapters.fhir_record import FhirRecord
from service.domain.advisor import Recommendation, merge_settings, recommend
from service.domain.checkpoint import SIZE_RULES, Checkpoint
from service.domain.commentary import commentary
from service.domain.criteria import CRITERIA, recist11
from service.domain.errors import NotFound, UnsupportedInput
from service.domain.history import Settled, build_history, resume_history, settled_history
from service.domain.model import (
    Assessment,
    AssessmentParameters,
    ClinicalSetting,
    History,
    PatientIdentity,
    TimepointReport,
)

PRIMARY_CRITERION = "recist-1.1"  # always assessed, and always first (contract section 2)


@dataclass(frozen=True, slots=True)
class Inbound:
    """One report as received, with the digest of its source bytes (idempotency)."""

    report: TimepointReport
    digest: str
    received: tuple[FhirRecord, ...] = ()  # FHIR resources of the input, for the index
    dicom_context: dict[str, Any] | None = None  # sr_context.extract of a DICOM SR


@dataclass(slots=True)
class Tally:
    """What one ingest did, for the caller to count (README "Observability"): reports
    newly stored, reports already stored with the same content, and the (criterion,
    overall response) of each timepoint result that was new or changed."""

    new: int = 0
    redelivered: int = 0
    verdicts: list[tuple[str, str]] = field(default_factory=list)


# A timepoint whose stored result got a new version (contract section 4), for the
# caller to act on once the transaction committed (e.g. push its SR to a PACS):
# (tenant, patient, date).
Change = tuple[str, PatientIdentity, date]


def fresh_attempt(changed: list[Change], tally: Tally | None) -> Callable[[], None]:
    """What each attempt of a retried transaction (``db.transaction``) calls first: it
    forgets what an earlier attempt, rolled back, noted in *changed* and *tally*, so a
    retry neither pushes nor counts twice."""
    start = None if tally is None else (tally.new, tally.redelivered, len(tally.verdicts))

    def forget() -> None:
        changed.clear()
        if tally is not None and start is not None:
            tally.new, tally.redelivered = start[0], start[1]
            del tally.verdicts[start[2] :]

    return forget


def choose_criteria(
    requested: Sequence[str], recommendations: Sequence[Recommendation]
) -> tuple[str, ...]:
    """The criteria to apply: RECIST 1.1 first, then the requested others (by default
    the advisor's), once each."""
    unknown = sorted(set(requested) - CRITERIA.keys())
    if unknown:
        raise UnsupportedInput(
            f"unknown criterion {', '.join(map(repr, unknown))}; "
            f"supported: {', '.join(sorted(CRITERIA))}",
            expression="criteria",
        )
    wanted = requested or [r.criterion for r in recommendations]
    return tuple(dict.fromkeys([PRIMARY_CRITERION, *wanted]))


def assess_reports(
    store: Store,
    inbound: Sequence[Inbound],
    criteria: Sequence[str],
    params: AssessmentParameters,
    root_url: str,
    setting: ClinicalSetting | None = None,
    changed: list[Change] | None = None,
    *,
    tenant: str,
    tally: Tally | None = None,
) -> fhir_writer.Resource:
    """Store the reports, then assess every timepoint they contain.

    Returns a ``collection`` Bundle: for each timepoint of the input, in date
    order, its DiagnosticReport (evaluated on the patient's stored history up to
    that date), the result Observations and the lesions' BodyStructures. *setting*
    (the ``primary`` / ``therapy`` parameters) completes what the sources say of the
    clinical setting; without *criteria* the advisor chooses them from it. *root_url*
    is the service root the Bundle's fullUrls and the report links start with.
    Each timepoint whose stored result changed is appended to *changed*; *tally*
    counts what was stored.
    """
    _store_all(store, inbound, criteria, tenant, tally)
    days_by_patient: dict[PatientIdentity, set[date]] = {}
    for item in inbound:
        days_by_patient.setdefault(item.report.patient, set()).add(item.report.date)
    dated: list[tuple[date, list[fhir_writer.Resource]]] = []
    for patient, days in days_by_patient.items():
        history, advice, assessments, assessed_before = _assess_ingested(
            store, patient, days, criteria, params, setting, tenant
        )
        # Timepoints stored before this earlier one arrived were assessed without it: the
        # result must not depend on the order of arrival (a serial replay's result).
        later = sorted({tp.date for tp in history.timepoints if tp.date > min(days)} - days)
        # The patient's own resource is indexed with the first timepoint's, at its first
        # assessment: a patient with a checkpoint has been assessed, and indexed, before
        # (issue 7: a SELECT of the index a follow-up).
        patient_records = (
            ()
            if assessed_before
            else (fhir_index.record(fhir_index.patient_resource(patient), patient),)
        )
        for position, day in enumerate([*later, *sorted(days)]):
            resources = _timepoint(
                store,
                tenant,
                history,
                assessments,
                day,
                advice,
                root_url,
                changed,
                tally if day in days else None,
                also_index=() if position else patient_records,
            )
            if day in days:
                dated.append((day, resources))
    dated.sort(key=lambda pair: pair[0])
    return fhir_writer.collection_bundle(
        (resource for _day, resources in dated for resource in resources), f"{root_url}/fhir"
    )


def assess_newest_as_sr(
    store: Store,
    inbound: Sequence[Inbound],
    criteria: Sequence[str],
    params: AssessmentParameters,
    setting: ClinicalSetting | None = None,
    *,
    tenant: str,
    tally: Tally | None = None,
) -> bytes:
    """Store the reports, then the assessment of the newest timepoint of the input as a
    DICOM SR (contract section 2, ``Accept: application/dicom``)."""
    _store_all(store, inbound, criteria, tenant, tally)
    newest = max((item.report for item in inbound), key=lambda report: report.date)
    return assessment_sr(
        store, newest.patient, newest.date, criteria, params, setting, tenant=tenant
    )


def assessment_sr(
    store: Store,
    patient: PatientIdentity,
    day: date,
    criteria: Sequence[str],
    params: AssessmentParameters,
    setting: ClinicalSetting | None = None,
    *,
    tenant: str,
) -> bytes:
    """The assessment of *patient*'s stored history at *day* as a DICOM SR; raises
    :class:`UnsupportedInput` when the timepoint has no DICOM context (FHIR only)."""
    # highdicom (~20 MB, ~0.2 s) is imported at the first SR written, not with the
    # service (issue 7, worker RSS).
    from service.adapters import sr_writer

    history, _advice, assessments = _assess(store, patient, criteria, params, setting, tenant)
    return sr_writer.write_sr(
        history,
        assessments,
        day,
        store.dicom_context(patient, day, tenant),
        preliminary=any(tp.preliminary for tp in history.timepoints if tp.date == day),
    )


def store_reports(store: Store, inbound: Sequence[Inbound], *, tenant: str) -> None:
    """Store the reports without assessing them (the offline CLI assesses once all are in)."""
    _store_all(store, inbound, (), tenant)


def find_patient(store: Store, page_id: str, *, tenant: str) -> PatientIdentity:
    """The stored patient whose page id (:func:`report_render.page_id`, its FHIR Patient
    id) is *page_id*."""
    for patient in store.patients(tenant):
        if report_render.page_id(patient) == page_id:
            return patient
    raise NotFound("no such patient")


def patient_view(
    store: Store,
    patient: PatientIdentity,
    criteria: Sequence[str],
    params: AssessmentParameters,
    setting: ClinicalSetting | None = None,
    *,
    tenant: str,
) -> report_render.PatientView:
    """What the pages and rendered reports show of *patient*: the stored history, each
    criterion's assessment, the advice and each timepoint's commentary, evaluated as
    :func:`assess_reports` does (on demand, never on the ingest path)."""
    reports = store.reports(patient, tenant)
    history, advice, assessments = _evaluate(build_history(reports), criteria, params, setting)
    days = [timepoint.date for timepoint in history.timepoints]
    return report_render.PatientView(
        history=history,
        assessments=tuple(assessments),
        advice=advice,
        commentary={day: commentary(history, assessments, day, advice) for day in days},
        studies={
            day: tuple(dict.fromkeys(r.study_uid for r in reports if r.date == day and r.study_uid))
            for day in days
        },
    )


def cohort_view(
    store: Store,
    criteria: Sequence[str],
    params: AssessmentParameters,
    setting: ClinicalSetting | None = None,
    *,
    tenant: str,
) -> list[report_render.PatientView]:
    """:func:`patient_view` of every stored patient of *tenant*."""
    return [
        patient_view(store, patient, criteria, params, setting, tenant=tenant)
        for patient in store.patients(tenant)
    ]


def _store_all(
    store: Store,
    inbound: Sequence[Inbound],
    criteria: Sequence[str],
    tenant: str,
    tally: Tally | None = None,
) -> None:
    choose_criteria(criteria, ())  # refuse unknown criteria before storing anything
    # Ingests of one patient take turns (reliability.md 3, "Concurrent posts for the same
    # patient"): each assesses a history that has every committed report. Patients are
    # taken in one order, so two transactions never wait for each other.
    patients = {item.report.patient for item in inbound}
    for patient in sorted(patients, key=lambda found: (found.system, found.value)):
        store.lock_patient(patient, tenant)
    for item in inbound:
        new = store.add_report(item.report, item.digest, tenant, dicom_context=item.dicom_context)
        if tally is not None:
            tally.new += new
            tally.redelivered += not new
        store.put_resources([(record, None) for record in item.received], tenant)


def _assess(
    store: Store,
    patient: PatientIdentity,
    criteria: Sequence[str],
    params: AssessmentParameters,
    setting: ClinicalSetting | None,
    tenant: str,
) -> tuple[History, tuple[Recommendation, ...], list[Assessment]]:
    """The patient's stored history, the advice for its setting, each criterion's
    assessment of it."""
    return _evaluate(build_history(store.reports(patient, tenant)), criteria, params, setting)


def _assess_ingested(
    store: Store,
    patient: PatientIdentity,
    days: Collection[date],
    criteria: Sequence[str],
    params: AssessmentParameters,
    setting: ClinicalSetting | None,
    tenant: str,
) -> tuple[History, tuple[Recommendation, ...], list[Assessment], bool]:
    """:func:`_assess` of a patient whose reports of *days* were just stored: resumed
    from the checkpoint of the patient's last assessment when every report it was not
    made from is dated after it, else from all the reports (issue 7, history growth).
    The new checkpoint is stored either way; the last value says whether one was read
    (the patient was assessed before).

    A resumed history holds the baseline and the new timepoints only; the rest of what
    is assessed (lesions, roles, warnings, setting, each criterion's responses) equals
    the assessment of every report.
    """
    stored = store.history(patient, tenant)
    resumed = None
    if stored.checkpoint is not None:
        resumed = _resume(stored.checkpoint, stored.reports, days, criteria, params, setting)
    if resumed is None:
        reports = stored.reports if stored.checkpoint is None else store.reports(patient, tenant)
        history, settled = settled_history(reports)
        advice, folded = _folded(history, criteria, params, setting)
    else:
        history, settled, advice, folded = resumed
    folds = {assessment.criterion: fold for assessment, fold in folded if fold is not None}
    store.save_checkpoint(patient, Checkpoint(settled, folds), stored.documents, tenant)
    assessed = [assessment for assessment, _fold in folded]
    return history, advice, assessed, stored.checkpoint is not None


def _resume(
    checkpoint: Checkpoint,
    reports: Sequence[TimepointReport],
    days: Collection[date],
    criteria: Sequence[str],
    params: AssessmentParameters,
    setting: ClinicalSetting | None,
) -> tuple[History, Settled, tuple[Recommendation, ...], list[Folded]] | None:
    """The assessment of *checkpoint* resumed with *reports* (those it was not made
    from), or None when it cannot be: a report (or one of *days*) at or before its last
    timepoint, a criterion it has no fold of, other parameters, another disease."""
    if not set(days) <= {report.date for report in reports}:
        return None
    resumed = resume_history(checkpoint.settled, reports)
    if resumed is None:
        return None
    history, settled = resumed
    advice = recommend(merge_settings([history.setting, setting]))
    folded: list[Folded] = []
    for criterion in choose_criteria(criteria, advice):
        fold = checkpoint.folds.get(criterion)
        found = None if fold is None else recist11.resume_by_size(history, params, fold)
        if found is None:
            return None
        folded.append(found)
    return history, settled, advice, folded


def _evaluate(
    history: History,
    criteria: Sequence[str],
    params: AssessmentParameters,
    setting: ClinicalSetting | None,
) -> tuple[History, tuple[Recommendation, ...], list[Assessment]]:
    advice, folded = _folded(history, criteria, params, setting)
    return history, advice, [assessment for assessment, _fold in folded]


# An assessment, with the fold it was made of when its criterion is size-based.
Folded = tuple[Assessment, recist11.Fold | None]


def _folded(
    history: History,
    criteria: Sequence[str],
    params: AssessmentParameters,
    setting: ClinicalSetting | None,
) -> tuple[tuple[Recommendation, ...], list[Folded]]:
    """The advice for the history's setting, each criterion's assessment of it."""
    advice = recommend(merge_settings([history.setting, setting]))
    chosen = choose_criteria(criteria, advice)
    return advice, [_assessment(name, history, params) for name in chosen]


# The fold of each patient's last assessment by each size-based criterion in this
# process: the next one evaluates only the timepoints whose inputs changed, the new one
# when a timepoint is appended (issue 7, history growth; recist11.Fold). Patients of two
# tenants may share a slot: a fold holds only for the very observation objects it was
# evaluated from. A fold keeps those observations alive, so the folds kept hold at most
# as many timepoints as the decoded reports db keeps.
_FOLDS: BoundedCache[recist11.Fold] = BoundedCache(512, weight=lambda fold: len(fold.steps) + 1)


def _assessment(criterion: str, history: History, params: AssessmentParameters) -> Folded:
    size_rules = SIZE_RULES.get(criterion)
    if size_rules is None:
        return CRITERIA[criterion](history, params), None
    key = (history.patient, criterion)
    assessment, fold = recist11.fold_by_size(history, params, size_rules(params), _FOLDS.get(key))
    _FOLDS.put(key, fold)
    return assessment, fold


def _timepoint(
    store: Store,
    tenant: str,
    history: History,
    assessments: Sequence[Assessment],
    day: date,
    advice: Sequence[Recommendation],
    root_url: str,
    changed: list[Change] | None = None,
    tally: Tally | None = None,
    also_index: Sequence[FhirRecord] = (),
) -> list[fhir_writer.Resource]:
    """One timepoint's resources, its report stamped with the stored version and the
    links to its renderings (presentedForm), kept for the FHIR face after
    *also_index* is indexed.

    The version changes only when the content does (contract section 4:
    re-assessment replaces the report with a new ``meta.versionId``); the links
    depend on the caller's URL, so they are not part of the content digest.
    """
    notes = commentary(history, assessments, day, advice)
    scheme = store.id_scheme(history.patient, tenant)
    resources = fhir_writer.timepoint_resources(history, assessments, day, notes, scheme)
    content = digest(fhir_writer.dumps({"resources": resources}))
    forms = report_render.presented_form(root_url, history.patient, day)

    def stamped(result: StoredResult) -> list[fhir_writer.Resource]:
        """The resources, the report stamped with *result*'s version."""
        report = fhir_writer.stamp_report(resources[0], result.version, result.issued, forms)
        return [report, *resources[1:]]

    def records(result: StoredResult) -> list[tuple[FhirRecord, int | None]]:
        """The resources as kept for *result*, the report at its version."""
        return [
            (fhir_index.record(resource, history.patient), None if index else result.version)
            for index, resource in enumerate(stamped(result))
        ]

    store.put_resources([(record, None) for record in also_index], tenant)
    stored = store.put_timepoint(history.patient, day, content, records, tenant)
    resources = stamped(stored)
    if stored.changed and changed is not None:
        changed.append((tenant, history.patient, day))
    if stored.changed and tally is not None:
        for assessment in assessments:
            overall = assessment.at(day).overall
            tally.verdicts.append((assessment.criterion, overall.value if overall else "baseline"))
    return resources
