"""Assessments as FHIR R4 resources: DiagnosticReport, result Observations,
mCODE CancerDiseaseStatus, per-lesion TumorSize-style Observations and one
BodyStructure per tracked lesion (contract section 4; interop.md 3c and 6.1).

Resources are plain dicts, serialised with orjson by :func:`dumps`: building them
with fhir.resources costs ~200 times more on the request path (performance.md
section 2.2). The tests validate every emitted resource with fhir.resources R4B.
Ids are UUID 5 of the patient, date and content kind, so re-assessing a
timepoint replaces the same resources; a patient stored from revision 0010 on has its
timepoint resources' ids begin as its own (:class:`IdScheme`).
"""

from __future__ import annotations

import hashlib
import html
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from enum import IntEnum
from typing import Any, Final

import orjson

from service.adapters import fhir_codes as fc, json_bytes
from service.domain.model import (
    Assessment,
    History,
    LesionObservation,
    LesionRole,
    PatientIdentity,
    Response,
    TimepointResponse,
    TrackedLesion,
)

Resource = dict[str, Any]

_ID_NAMESPACE = uuid.UUID("5b0c8f7e-3f7e-4a59-9d8c-2f4f6f1c7a10")
# SHA-1 state after the namespace bytes: each id hashes only its name on a copy.
_NAMESPACE_SHA1 = hashlib.sha1(_ID_NAMESPACE.bytes, usedforsecurity=False)
_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")
_TWO_PLACES = Decimal("0.01")
_ROLE_TEXT = {
    LesionRole.TARGET: "Target lesion",
    LesionRole.NON_TARGET: "Non-target lesion",
    LesionRole.NON_LESION: "Non-lesion",
    LesionRole.NEW: "New lesion",
    LesionRole.NEW_TARGET: "New lesion (target, iRECIST NLT)",
    LesionRole.NEW_NON_TARGET: "New lesion (non-target, iRECIST NLNT)",
}
CHUN = "chun"
_SCHEME_SYSTEM = {"SCT": fc.SNOMED, "DCM": fc.DCM, "LN": fc.LOINC, "NCIt": fc.NCIT}


class IdScheme(IntEnum):
    """How a patient's timepoint resources (its DiagnosticReports, result Observations
    and BodyStructures) are named: ``patient.id_scheme`` (migration 0010), fixed when
    the patient is first stored, so that a re-assessment keeps every id (contract
    section 4)."""

    NAMED = 0
    """:func:`resource_id`: the patients stored before revision 0010 keep it."""
    PATIENT_PREFIXED = 1
    """:func:`resource_id` with its first 12 hex digits those of the patient's own id
    (its Patient resource's): a patient's resources sit side by side in the resource
    index's unique index, so a new timepoint's ~22 rows change a few of its leaves, not
    ~22 of them, each a page its commit writes (issue 7: +10 % SRs a second in an A/B,
    bench/HISTORY.md)."""
    PATIENT_INDEXED = 2
    """The ids of :data:`PATIENT_PREFIXED`, the patient row keeping that prefix
    (:func:`id_prefix`, ``patient.resource_prefix``; migration 0011): a read by id finds
    the patient, so its timepoints' resources are kept in their result rows
    (``timepoint_codec``), not as ~22 rows of the resource index each (issue 7)."""


# Names one of a patient's timepoint resources (:func:`namer`) from its parts.
Namer = Callable[..., str]


def namer(patient: PatientIdentity, scheme: IdScheme) -> Namer:
    """The ids of *patient*'s timepoint resources under *scheme*."""
    if scheme is IdScheme.NAMED:
        return lambda *parts: resource_id(patient, *parts)
    prefix = id_prefix(patient)
    return lambda *parts: prefix + resource_id(patient, *parts)[ID_PREFIX_LENGTH:]


ID_PREFIX_LENGTH: Final = 13  # 8 + 4 hex digits and their dash


def id_prefix(patient: PatientIdentity) -> str:
    """What every timepoint resource id of *patient* begins with, unless its scheme is
    :data:`IdScheme.NAMED`: the beginning of its Patient id."""
    return patient_id(patient)[:ID_PREFIX_LENGTH]


def patient_id(patient: PatientIdentity) -> str:
    """The id of *patient*'s Patient resource (also its page's, report_render.page_id)."""
    return resource_id(patient, "patient")


def resource_id(patient: PatientIdentity, *parts: object) -> str:
    """A stable id: the same patient, date and kind always give the same id."""
    name = "|".join([patient.system, patient.value, *map(str, parts)])
    return _uuid5(name)


def _uuid5(name: str) -> str:
    """``str(uuid.uuid5(_ID_NAMESPACE, name))`` (RFC 4122 4.3), without building the
    UUID object: about five times less CPU, and there are ~35 ids per timepoint."""
    sha = _NAMESPACE_SHA1.copy()
    sha.update(name.encode())
    hexa = sha.hexdigest()
    variant = "89ab"[int(hexa[16], 16) & 3]  # the two top bits of octet 8 become 10
    return f"{hexa[:8]}-{hexa[8:12]}-5{hexa[13:16]}-{variant}{hexa[17:20]}-{hexa[20:32]}"


def timepoint_resources(
    history: History,
    assessments: Sequence[Assessment],
    day: date,
    commentary: Sequence[str] = (),
    scheme: IdScheme = IdScheme.NAMED,
) -> list[Resource]:
    """The DiagnosticReport of one timepoint, then its results, then the lesions, with
    the ids of the patient's *scheme*.

    *commentary* (ancillary findings, flags, recommendations) ends the conclusion.
    ``issued`` and ``meta.versionId`` are left for :func:`stamp_report`: they
    depend on what is already stored.
    """
    patient = history.patient
    name = namer(patient, scheme)
    timepoint = history.timepoint(day)
    status = "preliminary" if timepoint.preliminary else "final"
    subject = _subject(patient)
    results: list[Resource] = []
    for assessment in assessments:
        response = assessment.at(day)
        results.extend(_response_observations(name, assessment.criterion, response, status))
    primary = assessments[0].at(day)
    if primary.overall is not None:
        results.append(_disease_status(name, day, primary.overall, status))
    lesions = [lesion for lesion in history.lesions.values() if lesion.first_seen <= day]
    lesion_ids = {lesion.key: name("lesion", lesion.key) for lesion in lesions}
    for lesion in lesions:
        observation = timepoint.observations.get(lesion.key)
        components = [] if observation is None else _size_components(observation)
        if observation is not None and components:
            focus = f"BodyStructure/{lesion_ids[lesion.key]}"
            results.append(_tumor_size(name, lesion, observation, components, day, status, focus))
    for resource in results:
        resource["subject"] = subject
    report = _diagnostic_report(history, assessments, day, status, results, commentary, name)
    return [
        report,
        *results,
        *(_body_structure(patient, lesion, lesion_ids[lesion.key]) for lesion in lesions),
    ]


def stamp_report(
    report: Resource, version: int, issued: datetime, presented: Sequence[Resource] = ()
) -> Resource:
    """The report with its stored version, issue time and the Attachments that link its
    renderings (contract section 4: ``presentedForm`` by ``url``, not embedded)."""
    stamped = {**report, "meta": {"versionId": str(version)}, "issued": issued.isoformat()}
    if presented:
        stamped["presentedForm"] = list(presented)
    return stamped


def collection_bundle(resources: Iterable[Resource], base_url: str) -> Resource:
    """A ``collection`` Bundle; a resource repeated across timepoints appears once."""
    entries: list[Resource] = []
    seen: set[str] = set()
    for resource in resources:
        full_url = f"{base_url.rstrip('/')}/{resource['resourceType']}/{resource['id']}"
        if full_url in seen:
            continue
        seen.add(full_url)
        entries.append({"fullUrl": full_url, "resource": resource})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def dumps(resource: Resource) -> bytes:
    """Serialise with orjson (right-sized: json_bytes); Decimals become JSON numbers."""
    return json_bytes.dumps(resource, default=_decimal)


def dumps_answer(resource: Resource) -> bytes:
    """:func:`dumps` of an HTTP answer, sent once and dropped: orjson's own buffer,
    not right-sized, since the copy that right-sizes it would add the answer's size to
    the request's peak memory (a 200-lesion SR's Bundle: ~470 KB; issue 7)."""
    return orjson.dumps(resource, default=_decimal)


def _decimal(value: object) -> float:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _subject(patient: PatientIdentity) -> Resource:
    return {"identifier": {"system": patient.system, "value": patient.value}}


def _coding(system: str, code: str, display: str) -> Resource:
    return {"system": system, "code": code, "display": display}


def _concept(system: str, pair: tuple[str, str], text: str | None = None) -> Resource:
    concept: Resource = {"coding": [_coding(system, *pair)]}
    if text:
        concept["text"] = text
    return concept


def _response_concept(response: Response) -> Resource:
    return _concept(fc.NCIT, fc.RESPONSE_CODE[response], response.value)


def _method(criterion: str) -> Resource:
    code, display = fc.CRITERION_METHOD[criterion]
    return {"coding": [_coding(fc.NCIT, code, display)], "text": display}


def _quantity(value: Decimal, unit: str) -> Resource:
    rounded = value.quantize(_TWO_PLACES)  # display precision only (criteria.md 2)
    return {"value": rounded, "unit": unit, "system": fc.UCUM, "code": unit}


def _response_observations(
    name: Namer, criterion: str, response: TimepointResponse, status: str
) -> list[Resource]:
    day = response.date
    note = [{"text": "; ".join(response.explanation + response.warnings)}]

    def observation(code: tuple[str, str], value: Resource) -> Resource:
        return {
            "resourceType": "Observation",
            "id": name(day, criterion, code[0]),
            "status": status,
            "category": [_concept(fc.OBSERVATION_CATEGORY, ("imaging", "Imaging"))],
            "code": _concept(fc.NCIT, code),
            "effectiveDateTime": day.isoformat(),
            "method": _method(criterion),
            "note": note,
            **value,
        }

    found: list[Resource] = []
    overall_code = (
        fc.MORPHOLOGIC_RESPONSE if criterion == CHUN else fc.OVERALL_RESPONSE
    )  # contract section 4: Chun reports a morphologic response
    coded = (
        (overall_code, response.overall),
        (fc.TARGET_RESPONSE, response.target),
        (fc.NON_TARGET_RESPONSE, response.non_target),
    )
    for code, category in coded:
        if category is not None:
            found.append(observation(code, {"valueCodeableConcept": _response_concept(category)}))
    if response.overall is not None and criterion != CHUN:
        found.append(observation(fc.NEW_LESION_PROGRESSION, {"valueBoolean": response.new_lesions}))
    if response.best_overall is not None:
        found.append(
            observation(
                fc.BEST_OVERALL_RESPONSE,
                {"valueCodeableConcept": _response_concept(response.best_overall)},
            )
        )
    sums = response.sums
    if sums is not None:
        quantities = (
            (fc.SUM_OF_DIAMETERS, sums.current_mm, "mm"),
            (fc.PCT_FROM_BASELINE, sums.pct_from_baseline, "%"),
            (fc.PCT_FROM_NADIR, sums.pct_from_nadir, "%"),
            (fc.ABS_FROM_NADIR, sums.abs_from_nadir_mm, "mm"),
        )
        for code, number, unit in quantities:
            if number is not None and not (response.is_baseline and code != fc.SUM_OF_DIAMETERS):
                found.append(observation(code, {"valueQuantity": _quantity(number, unit)}))
    return found


def _disease_status(name: Namer, day: date, overall: Response, status: str) -> Resource:
    """mCODE CancerDiseaseStatus (LOINC 97509-4), value mapped per criteria.md 10.2."""
    return {
        "resourceType": "Observation",
        "id": name(day, "cancer-disease-status"),
        "meta": {"profile": [fc.MCODE_DISEASE_STATUS]},
        "extension": [
            {
                "url": fc.MCODE_EVIDENCE_TYPE,
                "valueCodeableConcept": _concept(fc.SNOMED, ("363679005", "Imaging (procedure)")),
            }
        ],
        "status": status,
        "category": [_concept(fc.OBSERVATION_CATEGORY, ("imaging", "Imaging"))],
        "code": _concept(fc.LOINC, ("97509-4", "Cancer disease progression")),
        "effectiveDateTime": day.isoformat(),
        "valueCodeableConcept": _concept(
            fc.SNOMED, fc.DISEASE_STATUS[overall], f"RECIST 1.1 {overall.value}"
        ),
    }


def _size_components(observation: LesionObservation) -> list[Resource]:
    components = []
    parts = (
        ("33728-7", "Size.maximum dimension in Tumor", observation.long_axis_mm, "mm"),
        ("33729-5", "Size additional dimension in Tumor", observation.short_axis_mm, "mm"),
    )
    for code, display, value, unit in parts:
        if value is not None:
            components.append(
                {
                    "code": _concept(fc.LOINC, (code, display)),
                    "valueQuantity": _quantity(value, unit),
                }
            )
    return components


def _tumor_size(
    name: Namer,
    lesion: TrackedLesion,
    observation: LesionObservation,
    components: list[Resource],
    day: date,
    status: str,
    focus: str,
) -> Resource:
    """Per-lesion sizes (*components*: :func:`_size_components` of *observation*),
    mCODE TumorSize style (LOINC 21889-1, *focus*: the lesion's BodyStructure)."""
    resource: Resource = {
        "resourceType": "Observation",
        "id": name(day, "tumor-size", lesion.key),
        "meta": {"profile": [fc.MCODE_TUMOR_SIZE]},
        "status": status,
        "category": [_concept(fc.OBSERVATION_CATEGORY, ("imaging", "Imaging"))],
        "code": _concept(fc.LOINC, ("21889-1", "Size Tumor")),
        "focus": [{"reference": focus}],
        "effectiveDateTime": day.isoformat(),
        "component": components,
    }
    notes = [f"lesion state: {observation.state.value}"] if observation.state else []
    notes.extend(
        f"{finding.concept.meaning or finding.concept.value}: {finding.value}"
        for finding in observation.findings
    )
    if notes:
        resource["note"] = [{"text": text} for text in notes]
    return resource


def _body_structure(patient: PatientIdentity, lesion: TrackedLesion, lesion_id: str) -> Resource:
    """One tracked lesion, of id *lesion_id*; identifiers DCM 112040 / 112039 kept
    (contract section 4)."""
    identity = lesion.identity
    identifiers: list[Resource] = []
    if identity.tracking_uid:
        uid = identity.tracking_uid
        is_oid = bool(_OID.match(uid))
        identifiers.append(
            {
                "type": _concept(fc.DCM, ("112040", "Tracking Unique Identifier")),
                "system": fc.DICOM_UID_SYSTEM if is_oid else fc.LESION_LABEL_SYSTEM,
                "value": f"urn:oid:{uid}" if is_oid else uid,
            }
        )
    if identity.tracking_id:
        identifiers.append(
            {
                "type": _concept(fc.DCM, ("112039", "Tracking Identifier")),
                "system": fc.LESION_LABEL_SYSTEM,
                "value": identity.tracking_id,
            }
        )
    resource: Resource = {
        "resourceType": "BodyStructure",
        "id": lesion_id,
        "meta": {"profile": [fc.MCODE_TUMOR]},
        "identifier": identifiers,
        "description": f"{_ROLE_TEXT[lesion.role]} {identity}"
        + (" (lymph node)" if lesion.is_nodal else ""),
        "morphology": _concept(
            fc.SNOMED,
            (
                "367651003",
                "Malignant neoplasm of primary, secondary, or uncertain origin "
                "(morphologic abnormality)",
            ),
        ),
        "patient": _subject(patient),
    }
    if lesion.site is not None:
        location: Resource = {"text": lesion.site.meaning or lesion.site.value}
        system = _SCHEME_SYSTEM.get(lesion.site.scheme)
        if system is not None:
            location["coding"] = [_coding(system, lesion.site.value, lesion.site.meaning)]
        resource["location"] = location
    return resource


def _diagnostic_report(
    history: History,
    assessments: Sequence[Assessment],
    day: date,
    status: str,
    results: list[Resource],
    commentary: Sequence[str],
    name: Namer,
) -> Resource:
    patient = history.patient
    names = ", ".join(fc.CRITERION_METHOD[a.criterion][1] for a in assessments)
    conclusion = _conclusion(history, assessments, day, commentary)
    report_id = name(day, "diagnostic-report")
    codes = [
        _response_concept(overall)
        for overall in (a.at(day).overall for a in assessments)
        if overall is not None
    ]
    report: Resource = {
        "resourceType": "DiagnosticReport",
        "id": report_id,
        "text": {
            "status": "generated",
            "div": '<div xmlns="http://www.w3.org/1999/xhtml"><p>'
            + "</p><p>".join(html.escape(line) for line in conclusion)
            + "</p></div>",
        },
        "identifier": [{"system": fc.ASSESSMENT_IDENTIFIER_SYSTEM, "value": report_id}],
        "status": status,
        "category": [
            _concept(fc.LOINC, ("LP29684-5", "Radiology")),
            _concept(fc.V2_0074, ("RAD", "Radiology")),
        ],
        "code": _concept(
            fc.LOINC,
            ("18748-4", "Diagnostic imaging study"),
            f"Tumour response assessment ({names})",
        ),
        "subject": _subject(patient),
        "effectiveDateTime": day.isoformat(),
        "result": [
            {"reference": f"{resource['resourceType']}/{resource['id']}"} for resource in results
        ],
        "conclusion": "\n".join(conclusion),
    }
    if codes:
        report["conclusionCode"] = codes
    return report


def _conclusion(
    history: History, assessments: Sequence[Assessment], day: date, commentary: Sequence[str]
) -> list[str]:
    """One line per criterion with the numbers that decided it, the commentary, then
    the warnings."""
    lines: list[str] = []
    warnings: list[str] = list(history.warnings)
    for assessment in assessments:
        response = assessment.at(day)
        name = fc.CRITERION_METHOD[assessment.criterion][1]
        verdict = "baseline" if response.overall is None else response.overall.value
        best = (
            f" (best overall response so far: {response.best_overall.value})"
            if response.best_overall is not None
            else ""
        )
        lines.append(f"{name}: {verdict}{best}. " + "; ".join(response.explanation) + ".")
        warnings.extend(w for w in assessment.warnings if w not in warnings)
        warnings.extend(response.warnings)
    lines.extend(commentary)
    lines.extend(f"Warning: {warning}" for warning in warnings)
    return lines
