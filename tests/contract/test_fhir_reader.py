"""The FHIR reader and the strict JSON loader (contract section 3; interop.md 3 and 6)."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from service.adapters import strict_json
from service.adapters.fhir_reader import InvalidValue, MissingElement, read_fhir
from service.domain.errors import TooCostly, UnsupportedInput
from service.domain.model import (
    Code,
    LesionIdentity,
    LesionRole,
    LesionState,
    MeasurementKind,
    PatientIdentity,
    Primary,
    QualitativeFinding,
    Therapy,
)
from tests.fhir_factory import (
    DCM,
    PATIENT_SYSTEM,
    SNOMED,
    body_structure,
    coding,
    long_axis,
    measurement_bundle,
    observation,
)

LOINC = "http://loinc.org"
NCIT = "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl"
PROJECT = "http://tumour-response.org/fhir/CodeSystem/tr"


def _read(document: dict[str, Any]) -> Any:
    return read_fhir(strict_json.loads(json.dumps(document).encode()), digest="d")


def _collection(*resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": f"urn:uuid:{i}", "resource": r} for i, r in enumerate(resources)],
    }


def test_mcode_tumor_size_components_in_cm_become_axes_in_mm() -> None:
    tumor = body_structure("P1", "Tumor 1234") | {"id": "t"}
    size = observation("P1", "2024-05-02T10:00:00Z", "#t", coding(LOINC, "21889-1"))
    size["contained"] = [tumor]
    size["component"] = [
        {"code": coding(LOINC, "33728-7"), **long_axis(2.5, "cm")},
        {"code": coding(LOINC, "33729-5"), **long_axis(14)},
    ]
    (report,) = _read(size).reports
    assert report.patient == PatientIdentity(PATIENT_SYSTEM, "P1")
    assert report.date == date(2024, 5, 2)
    (lesion,) = report.lesions
    assert lesion.identity.tracking_id == "Tumor 1234"
    assert lesion.long_axis_mm == Decimal("25.0")
    assert lesion.short_axis_mm == 14
    assert lesion.site == Code("10200004", "SCT", "Liver")
    assert report.source.kind == "fhir"
    assert report.source.uid == "sha256:d"


def test_ig_group_members_inherit_focus_subject_date_and_site() -> None:
    lesion = {
        "resourceType": "BodyStructure",
        "identifier": [
            {"type": coding(DCM, "112040"), "system": "urn:dicom:uid", "value": "urn:oid:2.25.9"}
        ],
    }
    axis = {
        "resourceType": "Observation",
        "status": "preliminary",
        "code": coding(SNOMED, "103340004"),
        **long_axis(18),
    }
    state = {
        "resourceType": "Observation",
        "status": "final",
        "code": coding(NCIT, "C96643", "Tumor State"),
        "valueCodeableConcept": {"text": "too small to measure"},
    }
    group = observation("P2", "2024-01-09", "urn:uuid:0", coding(DCM, "125007"))
    group |= {
        "bodySite": coding(SNOMED, "59441001", "Lymph node"),
        "hasMember": [{"reference": "urn:uuid:1"}, {"reference": "urn:uuid:2"}],
        "partOf": [{"identifier": {"system": "urn:dicom:uid", "value": "urn:oid:1.2.3"}}],
    }
    (report,) = _read(_collection(lesion, axis, state, group)).reports
    (found,) = report.lesions
    assert found.identity == LesionIdentity(tracking_uid="2.25.9")
    assert found.is_nodal
    assert found.short_axis_mm == 18
    assert found.state is LesionState.TOO_SMALL_TO_MEASURE
    assert report.source.preliminary
    assert report.study_uid == "1.2.3"


def test_roles_states_merges_findings_and_setting() -> None:
    t1, t2 = body_structure("P3", "T1"), body_structure("P3", "T2")
    axis = observation("P3", "2024-02-01", "urn:uuid:0", coding(SNOMED, "103339001"))
    axis |= long_axis(0) | {
        "focus": [{"reference": "urn:uuid:0"}, {"reference": "urn:uuid:1"}],
        "component": [
            {"code": coding(NCIT, "C96643"), "valueCodeableConcept": coding(NCIT, "C94525")},
            {"code": coding(DCM, "112016"), "valueCodeableConcept": coding(DCM, "112075")},
        ],
    }
    chun = observation("P3", "2024-02-01", "urn:uuid:1", coding(PROJECT, "chun-group"))
    chun["valueInteger"] = 2
    necrosis = observation("P3", "2024-02-01", "urn:uuid:1", coding(SNOMED, "6574001", "Necrosis"))
    necrosis["valueString"] = "present"
    condition = {
        "resourceType": "Condition",
        "subject": {"identifier": {"system": PATIENT_SYSTEM, "value": "P3"}},
        "code": coding(SNOMED, "420120006"),
    }
    drug = {
        "resourceType": "MedicationStatement",
        "status": "active",
        "subject": {"identifier": {"system": PATIENT_SYSTEM, "value": "P3"}},
        "medicationCodeableConcept": coding("http://www.whocc.no/atc", "L01EA01"),
    }
    document = _collection(t1, t2, axis, chun, necrosis, condition, drug)
    document["identifier"] = {"system": "urn:example", "value": "b-1"}
    (report,) = _read(document).reports
    merged, host = report.lesions
    assert merged.state is LesionState.MERGED
    assert merged.role is LesionRole.NON_TARGET
    assert merged.merged_into is not None and merged.merged_into.tracking_id == "T2"
    assert merged.values(MeasurementKind.LONG_AXIS) == (0,)
    chun_code = Code("chun-group", "99TR")
    assert host.findings == (
        QualitativeFinding(chun_code, "2", Code("2", "99TR")),
        QualitativeFinding(Code("6574001", "SCT", "Necrosis"), "present"),
    )
    assert report.setting is not None
    assert report.setting.primary is Primary.GIST
    assert report.setting.therapies == frozenset({Therapy.TKI})
    assert report.source.uid == "urn:example|b-1"


def test_one_report_per_patient_and_date() -> None:
    first = measurement_bundle("P4", "2024-01-01", [("T1", 10)], "collection")
    second = measurement_bundle("P4", "2024-02-01", [("T1", 12)], "collection")
    both = first | {"entry": first["entry"] + second["entry"]}
    reports = _read(both).reports
    assert [report.date for report in reports] == [date(2024, 1, 1), date(2024, 2, 1)]
    assert len({report.source.uid for report in reports}) == 2


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda o: o.pop("subject"), MissingElement),
        (lambda o: o.pop("effectiveDateTime"), MissingElement),
        (lambda o: o.update(effectiveDateTime="2024-13"), InvalidValue),
        (lambda o: o.pop("focus"), MissingElement),
        (lambda o: o["valueQuantity"].update(code="[in_i]"), InvalidValue),
        (lambda o: o["valueQuantity"].update(system="urn:other"), InvalidValue),
        (lambda o: o.update(resourceType="Procedure"), UnsupportedInput),
    ],
)
def test_unusable_input_is_refused(change: Any, error: type[Exception]) -> None:
    resource = observation("P5", "2024-01-01", "#l", coding(SNOMED, "103339001"), **long_axis(5))
    resource["contained"] = [body_structure("P5", "T1") | {"id": "l"}]
    change(resource)
    with pytest.raises(error):
        _read(resource)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b'{"a": NaN}', strict_json.MalformedJson),
        (b'{"a": Infinity}', strict_json.MalformedJson),
        (b'{"a": 1, "a": 2}', strict_json.MalformedJson),
        (b"[" * 33 + b"]" * 33, TooCostly),
        (b'{"a": 1' + b"0" * 60 + b"}", TooCostly),
        (b'{"a": "\xff"}', strict_json.MalformedJson),
    ],
)
def test_the_strict_loader_refuses(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        strict_json.loads(data)


def test_the_strict_loader_keeps_decimals_and_ignores_brackets_in_strings() -> None:
    loaded = strict_json.loads(b'{"v": 1.50, "s": "' + b"[" * 100 + b'"}')
    assert loaded["v"] == Decimal("1.50")
    assert strict_json.loads(b"[" * 32 + b"]" * 32) is not None
