"""POST /assessments with one DICOM SR (contract section 2)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from service.adapters import db, db_schema
from service.adapters.fhir_writer import IdScheme, namer, patient_id
from service.config import Settings
from service.domain.model import DEFAULT_PATIENT_SYSTEM, PatientIdentity
from service.entrypoints.api.app import create_app
from tests import fhir_factory
from tests.api import readers
from tests.fhir_validation import validate_bundle
from tests.sr_factory import LesionSpec, make_sr, sr_bytes

pytestmark = pytest.mark.anyio

DICOM = {"Content-Type": "application/dicom"}
FHIR = {"Content-Type": "application/fhir+json"}


def _sr(day: str, t1: float, t2: float, patient_id: str = "PAT-1") -> bytes:
    return sr_bytes(
        make_sr(
            patient_id=patient_id,
            study_date=day,
            lesions=[
                LesionSpec("T1", long_axis_mm=t1, role="target", site="liver"),
                LesionSpec("T2", long_axis_mm=t2, role="target", site="liver"),
            ],
        )
    )


def _observation(bundle: dict[str, Any], code: str) -> dict[str, Any]:
    return next(
        entry["resource"]
        for entry in bundle["entry"]
        if entry["resource"]["resourceType"] == "Observation"
        and entry["resource"]["code"]["coding"][0]["code"] == code
    )


async def test_baseline_then_follow_up_gives_recist_pr(client: httpx.AsyncClient) -> None:
    baseline = await client.post("/assessments", content=_sr("20240101", 60, 40), headers=DICOM)
    assert baseline.status_code == 200, baseline.text
    assert baseline.headers["content-type"] == "application/fhir+json"
    follow_up = await client.post("/assessments", content=_sr("20240301", 42, 28), headers=DICOM)
    assert follow_up.status_code == 200, follow_up.text
    bundle = follow_up.json()
    validate_bundle(bundle)
    assert bundle["type"] == "collection"
    report = bundle["entry"][0]["resource"]
    assert report["resourceType"] == "DiagnosticReport"
    assert report["effectiveDateTime"] == "2024-03-01"
    overall = _observation(bundle, "C96613")
    assert overall["method"]["coding"][0]["code"] == "C124415"
    assert overall["valueCodeableConcept"]["coding"][0]["code"] == "C18058"
    assert _observation(bundle, "C96631")["valueQuantity"]["value"] == 70
    assert _observation(bundle, "C112370")["valueQuantity"]["value"] == -30
    assert report["subject"]["identifier"]["value"] == "PAT-1"


async def test_re_posting_the_same_sr_stores_nothing_twice(client: httpx.AsyncClient) -> None:
    body = _sr("20240101", 60, 40)
    first = await client.post("/assessments", content=body, headers=DICOM)
    again = await client.post("/assessments", content=body, headers=DICOM)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert first.json()["entry"][0]["resource"]["meta"]["versionId"] == "1"


async def test_a_new_timepoint_does_not_change_the_earlier_report_version(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/assessments", content=_sr("20240101", 60, 40), headers=DICOM)
    follow_up = await client.post("/assessments", content=_sr("20240301", 42, 28), headers=DICOM)
    assert follow_up.json()["entry"][0]["resource"]["meta"]["versionId"] == "1"


async def test_same_sop_instance_uid_with_other_content_is_409(
    client: httpx.AsyncClient,
) -> None:
    first = make_sr(
        patient_id="PAT-2",
        study_date="20240101",
        lesions=[LesionSpec("T1", long_axis_mm=30, role="target")],
    )
    changed = make_sr(
        patient_id="PAT-2",
        study_date="20240101",
        lesions=[LesionSpec("T1", long_axis_mm=31, role="target")],
        sop_instance_uid=first.SOPInstanceUID,
    )
    assert (await client.post("/assessments", content=sr_bytes(first), headers=DICOM)).is_success
    conflict = await client.post("/assessments", content=sr_bytes(changed), headers=DICOM)
    assert conflict.status_code == 409
    assert conflict.json()["issue"][0]["code"] == "duplicate"


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [
        ({"Content-Type": "text/plain"}, b"hello", 415, "not-supported"),
        ({}, b"hello", 415, "not-supported"),
        (DICOM, b"not a dicom file at all", 400, "invalid"),
        (DICOM, b"", 400, "invalid"),
    ],
)
async def test_bad_input_is_an_operation_outcome(
    client: httpx.AsyncClient, headers: dict[str, str], body: bytes, status: int, code: str
) -> None:
    response = await client.post("/assessments", content=body, headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/fhir+json"
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == code


async def test_an_sr_without_tid_1500_is_422(client: httpx.AsyncClient) -> None:
    dataset = make_sr(
        patient_id="PAT-3", study_date="20240101", lesions=[LesionSpec("T1", long_axis_mm=30)]
    )
    dataset.ContentSequence = []
    dataset.ConceptNameCodeSequence[0].CodeValue = "18748-4"
    dataset.ConceptNameCodeSequence[0].CodingSchemeDesignator = "LN"
    del dataset.ContentTemplateSequence
    response = await client.post("/assessments", content=sr_bytes(dataset), headers=DICOM)
    assert response.status_code == 422
    assert response.json()["issue"][0]["code"] == "not-supported"


async def test_unknown_criterion_is_422_and_nothing_is_stored(
    client: httpx.AsyncClient,
) -> None:
    body = _sr("20240101", 60, 40, patient_id="PAT-4")
    refused = await client.post(
        "/assessments", content=body, headers=DICOM, params={"criteria": "who"}
    )
    assert refused.status_code == 422
    assert refused.json()["issue"][0]["expression"] == ["criteria"]
    stored = await client.post("/assessments", content=body, headers=DICOM)
    assert stored.json()["entry"][0]["resource"]["meta"]["versionId"] == "1"


async def test_a_malformed_query_parameter_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/assessments",
        content=_sr("20240101", 60, 40),
        headers=DICOM,
        params={"confirm_min_days": "soon"},
    )
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == ["query.confirm_min_days"]


async def test_an_oversized_body_is_413(settings: Settings) -> None:
    small = settings.model_copy(update={"max_dicom_body_bytes": 1000})
    app = create_app(small)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.post(
                "/assessments", content=_sr("20240101", 60, 40), headers=DICOM
            )
    assert response.status_code == 413
    assert response.json()["issue"][0]["code"] == "too-long"


async def test_the_report_links_its_renderings_by_url(client: httpx.AsyncClient) -> None:
    await client.post("/assessments", content=_sr("20240101", 60, 40), headers=DICOM)
    follow_up = await client.post("/assessments", content=_sr("20240301", 42, 28), headers=DICOM)
    forms = follow_up.json()["entry"][0]["resource"]["presentedForm"]
    assert [form["contentType"] for form in forms] == ["text/html", "application/pdf"]
    html = await client.get(forms[0]["url"])
    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")
    assert "70" in html.text


async def test_a_configured_public_url_names_the_links(settings: Settings) -> None:
    public = settings.model_copy(update={"public_base_url": "https://pacs.example/tr"})
    app = create_app(public)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.post(
                "/assessments", content=_sr("20240101", 60, 40), headers=DICOM
            )
    bundle = response.json()
    assert bundle["entry"][0]["fullUrl"].startswith(
        "https://pacs.example/tr/fhir/DiagnosticReport/"
    )
    assert bundle["entry"][0]["resource"]["presentedForm"][0]["url"].startswith(
        "https://pacs.example/tr/ui/patients/"
    )


async def test_a_baseline_arriving_after_its_follow_up_reassesses_the_follow_up(
    client: httpx.AsyncClient,
) -> None:
    """reliability.md section 3 (X06): the stored result does not depend on the order
    of arrival; a serial replay in date order gives the same."""
    for day, t1, t2 in (("20240301", 42, 28), ("20240101", 60, 40)):  # follow-up first
        response = await client.post("/assessments", content=_sr(day, t1, t2), headers=DICOM)
        assert response.status_code == 200, response.text
    search = await client.get("/fhir/DiagnosticReport", params={"date": "2024-03-01"})
    (entry,) = search.json()["entry"]
    report = entry["resource"]
    assert report["meta"]["versionId"] == "2"  # assessed again once its baseline came
    assert [code["text"] for code in report["conclusionCode"]] == ["PR"]  # as in date order


async def test_a_patient_stored_before_revision_0010_keeps_its_named_ids(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """A re-assessment replaces each resource under its id (contract section 4): a
    patient stored before revision 0010 (its row's id_scheme 0) keeps the name-based
    ids; a new patient's ids begin as its Patient id does. Each follow-up, assessed
    again once its baseline came, has one report, version 2, under that id."""
    engine = db.create_engine(settings.database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.insert(db_schema.patient),
                {"tenant": "default", "system": DEFAULT_PATIENT_SYSTEM, "value": "OLD-1"},
            )
    finally:
        engine.dispose()
    for value in ("OLD-1", "NEW-1"):
        for day, t1, t2 in (("20240301", 42, 28), ("20240101", 60, 40)):  # follow-up first
            sr = _sr(day, t1, t2, patient_id=value)
            assert (await client.post("/assessments", content=sr, headers=DICOM)).is_success
    for value, scheme in (("OLD-1", IdScheme.NAMED), ("NEW-1", IdScheme.PATIENT_PREFIXED)):
        patient = PatientIdentity(DEFAULT_PATIENT_SYSTEM, value)
        search = await client.get(
            "/fhir/DiagnosticReport",
            params={
                "subject:identifier": f"{DEFAULT_PATIENT_SYSTEM}|{value}",
                "date": "2024-03-01",
            },
        )
        (entry,) = search.json()["entry"]
        report = entry["resource"]
        assert report["id"] == namer(patient, scheme)(date(2024, 3, 1), "diagnostic-report")
        assert report["meta"]["versionId"] == "2"
        results = [result["reference"] for result in report["result"]]
        own = patient_id(patient)[:13]
        assert all(reference.split("/")[1].startswith(own) for reference in results) is (
            scheme is IdScheme.PATIENT_PREFIXED
        )


async def test_srs_read_in_the_companion_process_answer_as_read_in_the_server(
    settings: Settings, tmp_path: Path
) -> None:
    """The production default (TR_SR_READ_PROCESS=true) answers the same bodies as the
    read in the server does, a refusal included."""
    bodies = [_sr("20240101", 60, 40), _sr("20240301", 42, 28), b"DICM?"]

    async def send(client: httpx.AsyncClient) -> readers.Answers:
        found = []
        for body in bodies:
            response = await client.post("/assessments", content=body, headers=DICOM)
            found.append((response.status_code, readers.without_times(response.json())))
        return found

    answers = await readers.with_each_reader(settings, tmp_path, send)
    assert [status for status, _ in answers[True]] == [200, 200, 400]
    assert answers[True] == answers[False]


async def test_fhir_bodies_read_in_the_companion_process_answer_as_read_in_the_server(
    settings: Settings, tmp_path: Path
) -> None:
    """FHIR bodies of POST /assessments: a Bundle, its follow-up, an Observation naming
    the stored Patient by id (left to the server, which resolves it with the resource
    index) and a body that is not JSON answer the same with either reader."""

    async def send(client: httpx.AsyncClient) -> readers.Answers:
        found = []
        for day, size in (("2024-01-05", 30.0), ("2024-03-05", 18.0)):
            bundle = fhir_factory.measurement_bundle("RPF-1", day, [("T1", size)])
            response = await client.post(
                "/assessments", content=fhir_factory.encoded(bundle), headers=FHIR
            )
            found.append((response.status_code, readers.without_times(response.json())))
        patients = await client.get(
            "/fhir/Patient", params={"identifier": f"{fhir_factory.PATIENT_SYSTEM}|RPF-1"}
        )
        patient_id = patients.json()["entry"][0]["resource"]["id"]
        by_id = fhir_factory.observation(
            "RPF-1", "2024-05-05", "#l", fhir_factory.coding(fhir_factory.SNOMED, "103339001")
        ) | {
            **fhir_factory.long_axis(12.0),
            "subject": {"reference": f"Patient/{patient_id}"},
            "contained": [fhir_factory.body_structure("RPF-1", "T1") | {"id": "l"}],
        }
        for body in (fhir_factory.encoded(by_id), b"{not json"):
            response = await client.post("/assessments", content=body, headers=FHIR)
            found.append((response.status_code, readers.without_times(response.json())))
        return found

    answers = await readers.with_each_reader(settings, tmp_path, send)
    assert [status for status, _ in answers[True]] == [200, 200, 200, 400]
    assert answers[True] == answers[False]
    overall = [
        _observation(answer, "C96613")["valueCodeableConcept"]["coding"][0]["code"]
        for _, answer in answers[True][1:3]
    ]
    assert overall == ["C18058", "C18058"]  # PR, the third on the stored history
