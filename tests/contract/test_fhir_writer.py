"""The FHIR writer: valid R4 resources carrying the contract section 4 codes."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

import orjson

from service.adapters import fhir_writer
from service.domain.criteria import recist11
from service.domain.model import AssessmentParameters, LesionState, PatientIdentity
from tests.builders import history, lesion, node, report, tp
from tests.fhir_validation import validate_bundle, validate_resource

NCIT = "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl"
FOLLOW_UP = date(2024, 3, 1)


def _resources(*reports: Any, day: date = FOLLOW_UP) -> list[dict[str, Any]]:
    built = history(*reports)
    assessment = recist11.assess(built, AssessmentParameters())
    return fhir_writer.timepoint_resources(built, [assessment], day)


def _by_code(resources: list[dict[str, Any]], code: str) -> dict[str, Any]:
    return next(
        r
        for r in resources
        if r["resourceType"] == "Observation" and r["code"]["coding"][0]["code"] == code
    )


def test_pr_report_carries_the_contract_codes() -> None:
    resources = _resources(tp("2024-01-01", 60, 40), tp("2024-03-01", 42, 28))
    report_, *rest = resources
    assert report_["resourceType"] == "DiagnosticReport"
    assert report_["effectiveDateTime"] == "2024-03-01"
    assert report_["code"]["coding"][0]["code"] == "18748-4"
    assert {c["coding"][0]["code"] for c in report_["category"]} == {"LP29684-5", "RAD"}
    overall = _by_code(resources, "C96613")
    assert overall["method"]["coding"][0] == {
        "system": NCIT,
        "code": "C124415",
        "display": "RECIST 1.1",
    }
    assert overall["valueCodeableConcept"]["coding"][0]["code"] == "C18058"
    assert _by_code(resources, "C96631")["valueQuantity"]["value"] == 70
    assert _by_code(resources, "C112370")["valueQuantity"]["value"] == -30
    assert _by_code(resources, "C103420")["valueBoolean"] is False
    assert report_["conclusionCode"][0]["coding"][0]["code"] == "C18058"
    assert "70 mm" in report_["conclusion"] and "-30 %" in report_["conclusion"]
    assert all(r["effectiveDateTime"] == "2024-03-01" for r in rest if "effectiveDateTime" in r)


def test_every_result_is_referenced_and_every_resource_validates() -> None:
    resources = _resources(
        report("2024-01-01", lesion("T1", 30, uid="1.2.3.4"), node("NT1", 12)),
        report(
            "2024-03-01",
            lesion("T1", state=LesionState.TOO_SMALL_TO_MEASURE, uid="1.2.3.4"),
            node("NT1", 9),
        ),
    )
    report_ = resources[0]
    report_ = fhir_writer.stamp_report(report_, 3, datetime(2024, 3, 2, tzinfo=UTC))
    for resource in [report_, *resources[1:]]:
        validate_resource(orjson.loads(fhir_writer.dumps(resource)))
    referenced = {ref["reference"] for ref in report_["result"]}
    results = {
        f"{r['resourceType']}/{r['id']}"
        for r in resources[1:]
        if r["resourceType"] == "Observation"
    }
    assert referenced == results
    assert report_["meta"] == {"versionId": "3"}
    body_structures = [r for r in resources if r["resourceType"] == "BodyStructure"]
    assert len(body_structures) == 2
    tracked = next(b for b in body_structures if "T1" in b["description"])
    assert {i["type"]["coding"][0]["code"] for i in tracked["identifier"]} == {"112040", "112039"}
    assert "urn:oid:1.2.3.4" in {i["value"] for i in tracked["identifier"]}


def test_baseline_report_has_the_sum_but_no_response() -> None:
    resources = _resources(tp("2024-01-01", 60, 40), day=date(2024, 1, 1))
    codes = {
        r["code"]["coding"][0]["code"] for r in resources if r["resourceType"] == "Observation"
    }
    assert "C96631" in codes
    assert not codes & {"C96613", "C94536", "C112370", "97509-4"}
    assert "conclusionCode" not in resources[0]


def test_ids_are_stable_and_the_bundle_lists_each_resource_once() -> None:
    first = _resources(tp("2024-01-01", 60, 40), tp("2024-03-01", 42, 28))
    again = _resources(tp("2024-01-01", 60, 40), tp("2024-03-01", 42, 28))
    assert [r["id"] for r in first] == [r["id"] for r in again]
    bundle = fhir_writer.collection_bundle([*first, *again], "http://example.org/fhir")
    assert len(bundle["entry"]) == len(first)
    validate_bundle(orjson.loads(fhir_writer.dumps(bundle)))


def test_ids_are_the_uuid5_of_patient_and_parts() -> None:
    # Stored resources are replaced by id: the ids of past releases must not change.
    namespace = uuid.UUID("5b0c8f7e-3f7e-4a59-9d8c-2f4f6f1c7a10")
    patient = PatientIdentity("urn:oid:1.2.3", "Zoë-7")
    for n in range(64):  # every variant nibble comes up
        parts = (FOLLOW_UP, "tumor-size", f"T{n}")
        name = f"urn:oid:1.2.3|Zoë-7|2024-03-01|tumor-size|T{n}"
        assert fhir_writer.resource_id(patient, *parts) == str(uuid.uuid5(namespace, name))


def test_a_patient_prefixed_scheme_begins_every_timepoint_id_as_the_patients_own() -> None:
    """IdScheme.PATIENT_PREFIXED: each id is the named one (NAMED, the ids of patients
    stored before revision 0010) with its first 12 hex digits the patient's own id's;
    the ids stay distinct and stable, and every reference follows them."""
    built = history(tp("2024-01-01", 60, 40), tp("2024-03-01", 42, 28))
    assessment = recist11.assess(built, AssessmentParameters())
    named, prefixed, again = (
        fhir_writer.timepoint_resources(built, [assessment], FOLLOW_UP, (), scheme)
        for scheme in (
            fhir_writer.IdScheme.NAMED,
            fhir_writer.IdScheme.PATIENT_PREFIXED,
            fhir_writer.IdScheme.PATIENT_PREFIXED,
        )
    )
    own = fhir_writer.resource_id(built.patient, "patient")
    assert named == _resources(tp("2024-01-01", 60, 40), tp("2024-03-01", 42, 28))
    assert [r["id"] for r in prefixed] == [r["id"] for r in again]
    assert len({r["id"] for r in prefixed}) == len(prefixed) > 5
    for before, after in zip(named, prefixed, strict=True):
        assert after["id"] == own[:13] + before["id"][13:] != before["id"]
        uuid.UUID(after["id"])  # still UUID-shaped (a FHIR id of 36 characters)
    text = fhir_writer.dumps({"resources": prefixed}).decode()
    assert not any(resource["id"] in text for resource in named)  # no reference left behind
    report_, *rest = prefixed
    assert [result["reference"] for result in report_["result"]] == [
        f"Observation/{r['id']}" for r in rest if r["resourceType"] == "Observation"
    ]
    validate_bundle(
        orjson.loads(
            fhir_writer.dumps(fhir_writer.collection_bundle(prefixed, "http://example.org/fhir"))
        )
    )


def test_preliminary_sources_give_a_preliminary_report() -> None:
    from dataclasses import replace

    follow_up = tp("2024-03-01", 42, 28)
    follow_up = replace(follow_up, source=replace(follow_up.source, preliminary=True))
    resources = _resources(tp("2024-01-01", 60, 40), follow_up)
    assert {r.get("status") for r in resources if r["resourceType"] != "BodyStructure"} == {
        "preliminary"
    }
