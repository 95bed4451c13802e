"""POST /assessments content negotiation: the assessment as a DICOM SR (contract section 2)."""

from __future__ import annotations

from io import BytesIO

import httpx
import pytest
from fastapi import FastAPI
from pydicom import dcmread

from service.adapters.db import open_store
from service.domain.errors import NotFound
from service.domain.model import DEFAULT_PATIENT_SYSTEM, PatientIdentity
from tests.sr_factory import LesionSpec, make_sr, sr_bytes

pytestmark = pytest.mark.anyio

SR_IN = "application/dicom"


def _sr(day: str, t1: float, t2: float) -> bytes:
    lesions = [
        LesionSpec("T1", long_axis_mm=t1, role="target"),
        LesionSpec("T2", long_axis_mm=t2, role="target"),
    ]
    return sr_bytes(make_sr(patient_id="PAT-SR", study_date=day, lesions=lesions))


async def _post(client: httpx.AsyncClient, body: bytes, accept: str | None) -> httpx.Response:
    headers = {"Content-Type": SR_IN}
    if accept is not None:
        headers["Accept"] = accept
    return await client.post("/assessments", content=body, headers=headers)


def _code(ds, meaning: str) -> str:
    for item in ds.ContentSequence:
        for child in item.get("ContentSequence") or ():
            if child.ConceptNameCodeSequence[0].CodeMeaning == meaning:
                return str(child.ConceptCodeSequence[0].CodeValue)
    raise AssertionError(meaning)


async def test_accept_dicom_answers_the_newest_timepoint_as_an_sr(
    client: httpx.AsyncClient,
) -> None:
    baseline = await _post(client, _sr("20240101", 60, 40), None)
    assert baseline.status_code == 200
    follow_up_sr = _sr("20240301", 42, 28)
    answer = await _post(client, follow_up_sr, "application/dicom")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/dicom"
    sr = dcmread(BytesIO(answer.content))
    source = dcmread(BytesIO(follow_up_sr))
    assert sr.StudyInstanceUID == source.StudyInstanceUID
    assert sr.StudyDate == "20240301"
    assert sr.SOPInstanceUID != source.SOPInstanceUID
    assert _code(sr, "Current Response") == "PR"
    # Sent back to us, our own SR is refused, and nothing is stored.
    again = await _post(client, answer.content, "application/dicom")
    assert again.status_code == 422
    assert "assessment written by tumour-response" in again.json()["issue"][0]["diagnostics"]


@pytest.mark.parametrize(
    "accept", ["application/fhir+json", "application/json", "*/*", "text/html, */*;q=0.1"]
)
async def test_fhir_and_wildcards_answer_the_bundle(client: httpx.AsyncClient, accept: str) -> None:
    answer = await _post(client, _sr("20240101", 60, 40), accept)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/fhir+json"
    assert answer.json()["resourceType"] == "Bundle"


async def test_preference_order_is_by_q(client: httpx.AsyncClient) -> None:
    accept = "application/fhir+json;q=0.5, application/dicom"
    answer = await _post(client, _sr("20240101", 60, 40), accept)
    assert answer.headers["content-type"] == "application/dicom"


@pytest.mark.parametrize("accept", ["text/html", "application/dicom;q=0", "image/png, text/*"])
async def test_other_media_types_are_406_and_store_nothing(
    app: FastAPI, client: httpx.AsyncClient, accept: str
) -> None:
    answer = await _post(client, _sr("20240101", 60, 40), accept)
    assert answer.status_code == 406
    assert answer.headers["content-type"] == "application/fhir+json"
    assert answer.json()["issue"][0]["code"] == "not-supported"
    with pytest.raises(NotFound), open_store(app.state.engine) as store:
        store.reports(PatientIdentity(DEFAULT_PATIENT_SYSTEM, "PAT-SR"))
