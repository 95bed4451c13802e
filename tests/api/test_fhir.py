"""The FHIR REST face (contract section 2; interop.md 3d; reliability.md sections 4-5)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.fhir_factory import (
    PATIENT_SYSTEM,
    SNOMED,
    body_structure,
    coding,
    long_axis,
    measurement_bundle,
    observation,
)
from tests.fhir_validation import validate_bundle, validate_resource
from tests.sr_factory import LesionSpec, make_sr, sr_bytes

pytestmark = pytest.mark.anyio

FHIR = {"Content-Type": "application/fhir+json"}


def _verdict(resources: list[dict[str, Any]], day: str) -> dict[str, Any]:
    """Overall response code, sum and percent change of the RECIST 1.1 results of *day*."""
    found = {}
    for resource in resources:
        if resource["resourceType"] != "Observation" or resource.get("effectiveDateTime") != day:
            continue
        if resource.get("method", {}).get("coding", [{}])[0].get("code") != "C124415":
            continue
        code = resource["code"]["coding"][0]["code"]
        if "valueCodeableConcept" in resource:
            found[code] = resource["valueCodeableConcept"]["coding"][0]["code"]
        elif "valueQuantity" in resource:
            found[code] = resource["valueQuantity"]["value"]
    return found


async def _post_bundle(client: httpx.AsyncClient, bundle: dict[str, Any]) -> httpx.Response:
    return await client.post("/fhir", content=json.dumps(bundle), headers=FHIR)


async def _reports(client: httpx.AsyncClient, patient_id: str) -> list[dict[str, Any]]:
    answer = await client.get(
        "/fhir/DiagnosticReport", params={"subject:identifier": f"{PATIENT_SYSTEM}|{patient_id}"}
    )
    assert answer.status_code == 200, answer.text
    validate_bundle(answer.json())
    return [entry["resource"] for entry in answer.json()["entry"]]


async def test_a_transaction_gives_the_verdict_of_the_same_measurements_as_srs(
    client: httpx.AsyncClient,
) -> None:
    for day, sizes in (("2024-01-01", (60, 40)), ("2024-03-01", (42, 28))):
        answer = await _post_bundle(
            client, measurement_bundle("FHIR-1", day, [("T1", sizes[0]), ("T2", sizes[1])])
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["type"] == "transaction-response"
        statuses = {entry["response"]["status"] for entry in answer.json()["entry"]}
        assert "201 Created" in statuses
    for day, sizes in (("20240101", (60, 40)), ("20240301", (42, 28))):
        lesions = [
            LesionSpec("T1", long_axis_mm=sizes[0], role="target"),
            LesionSpec("T2", long_axis_mm=sizes[1], role="target"),
        ]
        sr = sr_bytes(make_sr(patient_id="SR-1", study_date=day, lesions=lesions))
        dicom = await client.post(
            "/assessments", content=sr, headers={"Content-Type": "application/dicom"}
        )
        assert dicom.status_code == 200, dicom.text
    sr_bundle = dicom.json()
    from_sr = _verdict([entry["resource"] for entry in sr_bundle["entry"]], "2024-03-01")
    reports = await _reports(client, "FHIR-1")
    assert [report["effectiveDateTime"] for report in reports] == ["2024-01-01", "2024-03-01"]
    results = []
    for reference in reports[1]["result"]:
        read = await client.get(f"/fhir/{reference['reference']}")
        assert read.status_code == 200, read.text
        results.append(read.json())
    from_fhir = _verdict(results, "2024-03-01")
    assert from_fhir == from_sr
    assert from_fhir["C96613"] == "C18058"  # PR
    assert from_fhir["C96631"] == 70
    assert from_fhir["C112370"] == -30


async def test_assessments_reads_a_fhir_collection_bundle(client: httpx.AsyncClient) -> None:
    bundle = measurement_bundle("FHIR-2", "2024-01-01", [("T1", 6.0)], "collection", unit="cm")
    answer = await client.post("/assessments", content=json.dumps(bundle), headers=FHIR)
    assert answer.status_code == 200, answer.text
    validate_bundle(answer.json())
    report = answer.json()["entry"][0]["resource"]
    assert report["resourceType"] == "DiagnosticReport"
    assert _verdict([e["resource"] for e in answer.json()["entry"]], "2024-01-01")["C96631"] == 60


def _single(patient_id: str, day: str, value: float = 21, ident: str = "obs-1") -> dict[str, Any]:
    lesion = body_structure(patient_id, "T1") | {"id": "lesion"}
    return observation(
        patient_id,
        day,
        "#lesion",
        coding(SNOMED, "103339001", "Long axis"),
        contained=[lesion],
        identifier=[{"system": "urn:example:obs", "value": ident}],
        **long_axis(value),
    )


async def test_create_observation_then_conditional_create_and_read(
    client: httpx.AsyncClient,
) -> None:
    body = json.dumps(_single("P-2", "2024-01-01"))
    created = await client.post("/fhir/Observation", content=body, headers=FHIR)
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    assert "/fhir/Observation/" in location and location.endswith("/_history/1")
    assert created.headers["etag"] == 'W/"1"'
    validate_resource(created.json())
    assert created.json()["meta"]["versionId"] == "1"
    again = await client.post(
        "/fhir/Observation",
        content=body,
        headers=FHIR | {"If-None-Exist": "identifier=urn:example:obs|obs-1"},
    )
    assert again.status_code == 200
    assert again.headers["location"] == location
    read = await client.get(location.split("/_history")[0].removeprefix("http://test"))
    assert read.status_code == 200
    assert read.headers["etag"] == 'W/"1"'
    assert read.json()["valueQuantity"]["value"] == 21
    minimal = await client.post(
        "/fhir/Observation",
        content=json.dumps(_single("P-2", "2024-02-01", 19, "obs-2")),
        headers=FHIR | {"Prefer": "return=minimal"},
    )
    assert minimal.status_code == 201
    assert minimal.content == b""
    assert minimal.headers["location"]


async def test_conditional_create_with_several_matches_is_412(client: httpx.AsyncClient) -> None:
    for ident in ("a", "b"):
        body = json.dumps(_single("P-3", "2024-01-01", ident=ident))
        assert (await client.post("/fhir/Observation", content=body, headers=FHIR)).is_success
    answer = await client.post(
        "/fhir/Observation",
        content=json.dumps(_single("P-3", "2024-01-01", ident="c")),
        headers=FHIR
        | {"If-None-Exist": f"subject:identifier={PATIENT_SYSTEM}|P-3&date=2024-01-01"},
    )
    assert answer.status_code == 412
    assert answer.json()["issue"][0]["code"] == "multiple-matches"


async def test_a_failed_transaction_stores_nothing_and_a_batch_answers_per_entry(
    client: httpx.AsyncClient,
) -> None:
    bundle = measurement_bundle("P-4", "2024-01-01", [("T1", 30), ("T2", 20)])
    bundle["entry"][4]["resource"]["valueQuantity"]["code"] = "[in_i]"
    failed = await _post_bundle(client, bundle)
    assert failed.status_code == 422
    assert failed.json()["issue"][0]["code"] == "value"
    assert await _reports(client, "P-4") == []
    batch = measurement_bundle("P-4", "2024-01-01", [("T1", 30)], "batch")
    good = {"fullUrl": "urn:uuid:obs", "request": {"method": "POST", "url": "Observation"}}
    bad = dict(good, resource=_single("P-4", "2024-01-01", ident="x") | {"effectiveDateTime": "x"})
    batch["entry"] = [dict(good, resource=_single("P-4", "2024-01-01")), bad]
    answer = await _post_bundle(client, batch)
    assert answer.status_code == 200
    assert [e["response"]["status"] for e in answer.json()["entry"]] == ["201 Created", "422"]
    assert answer.json()["entry"][1]["response"]["outcome"]["issue"][0]["code"] == "value"
    assert len(await _reports(client, "P-4")) == 1


def _deep(levels: int) -> bytes:
    return b'{"resourceType":"Observation","x":' + b"[" * levels + b"]" * levels + b"}"


_VALID = _single("BAD", "2024-01-01")


def _without(name: str) -> bytes:
    return json.dumps({key: value for key, value in _VALID.items() if key != name}).encode()


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "structure"),
        (json.dumps(_VALID).replace("21", "NaN").encode(), 400, "structure"),
        (json.dumps(_VALID).replace("21", "-Infinity").encode(), 400, "structure"),
        (b'{"resourceType":"Observation","status":"final","status":"final"}', 400, "structure"),
        (_deep(40), 400, "too-costly"),
        (b"[" * (1024 * 1024), 400, "too-costly"),
        (json.dumps({"resourceType": "Patient"}).encode(), 422, "not-supported"),
        (_without("subject"), 422, "required"),
        (_without("effectiveDateTime"), 422, "required"),
        (_without("focus"), 422, "required"),
        (json.dumps(_VALID).replace('"mm"', '"[ft_i]"').encode(), 422, "value"),
    ],
    ids=[
        "invalid-json",
        "nan",
        "infinity",
        "duplicate-key",
        "deep",
        "megabyte-of-brackets",
        "wrong-type",
        "no-subject",
        "no-date",
        "no-lesion",
        "unknown-unit",
    ],
)
async def test_bad_input_is_an_operation_outcome_and_stores_nothing(
    client: httpx.AsyncClient, body: bytes, status: int, code: str
) -> None:
    for path in ("/assessments", "/fhir/Observation"):
        answer = await client.post(path, content=body, headers=FHIR)
        expected = 400 if path == "/fhir/Observation" and code == "not-supported" else status
        assert answer.status_code == expected, (path, answer.text)
        outcome = answer.json()
        validate_resource(outcome)
        assert outcome["issue"][0]["code"] == (code if expected == status else "invalid")
    patients = await client.get("/fhir/Patient", params={"identifier": f"{PATIENT_SYSTEM}|BAD"})
    assert patients.json()["total"] == 0


async def test_a_bundle_over_the_entry_limit_is_413(client: httpx.AsyncClient) -> None:
    entry = {"resource": _VALID, "request": {"method": "POST", "url": "Observation"}}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [entry] * 1001}
    answer = await _post_bundle(client, bundle)
    assert answer.status_code == 413
    assert answer.json()["issue"][0]["code"] == "too-long"


async def test_metadata_and_content_negotiation(client: httpx.AsyncClient) -> None:
    answer = await client.get("/fhir/metadata")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/fhir+json")
    statement = answer.json()
    validate_resource(statement)
    assert statement["fhirVersion"] == "4.0.1"
    types = {r["type"] for r in statement["rest"][0]["resource"]}
    assert types == {"DiagnosticReport", "Observation", "BodyStructure", "Patient", "AuditEvent"}
    assert (await client.get("/fhir/metadata", params={"_format": "xml"})).status_code == 406
    xml = await client.get("/fhir/metadata", headers={"Accept": "application/fhir+xml"})
    assert xml.status_code == 406
    assert xml.json()["issue"][0]["code"] == "not-supported"
    r5 = await client.get(
        "/fhir/metadata", headers={"Accept": "application/fhir+json; fhirVersion=5.0"}
    )
    assert r5.status_code == 406
    text = await client.post(
        "/fhir/Observation", content=b"{}", headers={"Content-Type": "text/plain"}
    )
    assert text.status_code == 415


async def test_unknown_ids_and_search_parameters(client: httpx.AsyncClient) -> None:
    missing = await client.get("/fhir/BodyStructure/nope")
    assert missing.status_code == 404
    assert missing.json()["issue"][0]["code"] == "not-found"
    unknown = await client.get("/fhir/DiagnosticReport", params={"status": "final"})
    assert unknown.status_code == 400


async def test_patient_search_and_subject_reference(client: httpx.AsyncClient) -> None:
    await _post_bundle(client, measurement_bundle("P-5", "2024-01-01", [("T1", 30)]))
    await _post_bundle(client, measurement_bundle("P-5", "2024-02-01", [("T1", 31)]))
    found = await client.get("/fhir/Patient", params={"identifier": f"{PATIENT_SYSTEM}|P-5"})
    validate_bundle(found.json())
    patient_id = found.json()["entry"][0]["resource"]["id"]
    by_reference = await client.get(
        "/fhir/DiagnosticReport",
        params={"subject": f"Patient/{patient_id}", "date": "ge2024-01-15"},
    )
    days = [e["resource"]["effectiveDateTime"] for e in by_reference.json()["entry"]]
    assert days == ["2024-02-01"]
    body = observation("P-5", "2024-03-01", "#l", coding(SNOMED, "103339001"), **long_axis(32)) | {
        "subject": {"reference": f"Patient/{patient_id}"},
        "contained": [body_structure("P-5", "T1") | {"id": "l"}],
    }
    created = await client.post("/fhir/Observation", content=json.dumps(body), headers=FHIR)
    assert created.status_code == 201, created.text
    reports = await client.get(
        "/fhir/DiagnosticReport", params={"subject": f"Patient/{patient_id}", "date": "2024-03-01"}
    )
    assert reports.json()["total"] == 1


@pytest.mark.parametrize(
    "url",
    [
        "/fhir/AuditEvent?patient=%00",
        "/fhir/AuditEvent?type=%00",
        "/fhir/Observation/%00",
        "/fhir/DiagnosticReport?subject=Patient/%00",
        "/fhir/Patient?identifier=a|%00",
    ],
)
async def test_a_nul_character_in_the_url_is_invalid_on_every_database(
    client: httpx.AsyncClient, url: str
) -> None:
    # PostgreSQL text cannot hold NUL: before the check these were 500s there
    answer = await client.get(url)
    assert answer.status_code == 400, answer.text
    assert answer.json()["issue"][0]["code"] == "invalid"
