"""STOW-RS over ASGI: every HTTP status and Failure Reason path (PS3.18 10.5.3;
reliability.md sections 4 and 5), and ``POST /assessments`` with multipart/related."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydicom import dcmread

from service.adapters.db import open_store
from service.config import Settings
from service.entrypoints.api.app import create_app
from tests.api import readers
from tests.sr_factory import LesionSpec, make_sr, sr_bytes

pytestmark = pytest.mark.anyio

CT_IMAGE = (Path(__file__).resolve().parents[1] / "data" / "sr" / "ct_image.dcm").read_bytes()
BOUNDARY = "stow-test-boundary"
STOW_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
FAILED, REFERENCED, REASON, SOP_INSTANCE = "00081198", "00081199", "00081197", "00081155"


def _sr(day: str = "20240105", long_axis: float = 50, patient: str = "STOW-1") -> bytes:
    return sr_bytes(
        make_sr(patient_id=patient, study_date=day, lesions=[LesionSpec("T1", long_axis)])
    )


def _body(*parts: bytes, media_type: str = "application/dicom") -> bytes:
    out = b""
    for part in parts:
        out += f"--{BOUNDARY}\r\nContent-Type: {media_type}\r\n\r\n".encode() + part + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


async def _stow(client: httpx.AsyncClient, *parts: bytes, path: str = "") -> httpx.Response:
    return await client.post(
        f"/dicomweb/studies{path}", content=_body(*parts), headers={"Content-Type": STOW_TYPE}
    )


def _reasons(response: httpx.Response) -> list[int]:
    return _reasons_of(response.json())


def _reasons_of(answer: dict[str, Any]) -> list[int]:
    return [item[REASON]["Value"][0] for item in answer.get(FAILED, {}).get("Value", [])]


def _stored(response: httpx.Response) -> list[str]:
    items = response.json().get(REFERENCED, {}).get("Value", [])
    return [item[SOP_INSTANCE]["Value"][0] for item in items]


def _uid(data: bytes) -> str:
    return str(dcmread(BytesIO(data)).SOPInstanceUID)


async def test_all_stored_is_200_dicom_json_and_the_report_is_assessed(
    client: httpx.AsyncClient,
) -> None:
    baseline = _sr()
    response = await _stow(client, baseline)
    assert response.status_code == 200, response.headers.get("warning")
    assert response.headers["content-type"] == "application/dicom+json"
    assert _stored(response) == [_uid(baseline)]
    assert FAILED not in response.json()
    # The report exists already: posting the same SR gives the stored version 1.
    again = await client.post(
        "/assessments", content=baseline, headers={"Content-Type": "application/dicom"}
    )
    assert again.status_code == 200
    assert again.json()["entry"][0]["resource"]["meta"]["versionId"] == "1"
    assert (await _stow(client, baseline)).status_code == 200  # idempotent re-delivery


async def test_mixed_good_and_bad_is_202_with_a_reason_per_failure(
    client: httpx.AsyncClient,
) -> None:
    response = await _stow(client, _sr(), CT_IMAGE, b"not dicom at all")
    assert response.status_code == 202
    assert len(_stored(response)) == 1
    assert _reasons(response) == [0x0122, 0xC100]
    assert "not a readable DICOM" in response.headers["warning"]


async def test_all_bad_is_409(client: httpx.AsyncClient) -> None:
    response = await _stow(client, CT_IMAGE)
    assert response.status_code == 409
    assert _reasons(response) == [0x0122]
    assert REFERENCED not in response.json()


async def test_wrong_template_is_c110(client: httpx.AsyncClient) -> None:
    dataset = dcmread(BytesIO(_sr()))
    dataset.ConceptNameCodeSequence[0].CodeValue = "18748-4"
    dataset.ConceptNameCodeSequence[0].CodingSchemeDesignator = "LN"
    del dataset.ContentTemplateSequence
    response = await _stow(client, sr_bytes(dataset))
    assert (response.status_code, _reasons(response)) == (409, [0xC110])


async def test_same_uid_other_content_is_c120(client: httpx.AsyncClient) -> None:
    first = dcmread(BytesIO(_sr()))
    assert (await _stow(client, sr_bytes(first))).status_code == 200
    first.ContentDescription = "changed"
    response = await _stow(client, sr_bytes(first))
    assert (response.status_code, _reasons(response)) == (409, [0xC120])


def _same_study_other_patient(day: str = "20240105") -> tuple[bytes, bytes]:
    """Two SRs of one StudyInstanceUID: patient ID-A's, then patient ID-B's."""
    first = dcmread(BytesIO(_sr(day, patient="ID-A")))
    second = dcmread(BytesIO(_sr(day, patient="ID-B")))
    second.StudyInstanceUID = first.StudyInstanceUID
    return sr_bytes(first), sr_bytes(second)


def _patients(app: FastAPI) -> list[str]:
    with open_store(app.state.engine) as store:
        return [patient.value for patient in store.patients()]


async def test_a_study_known_under_another_patient_is_c121(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    first, second = _same_study_other_patient()
    assert (await _stow(client, first)).status_code == 200
    response = await _stow(client, second)
    assert (response.status_code, _reasons(response)) == (409, [0xC121])
    assert "already stored under another patient" in response.headers["warning"]
    assert _patients(app) == ["ID-A"]  # nothing of ID-B stored


async def test_post_assessments_answers_an_identity_conflict_with_409_conflict(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    first, second = _same_study_other_patient()
    headers = {"Content-Type": "application/dicom"}
    assert (await client.post("/assessments", content=first, headers=headers)).status_code == 200
    response = await client.post("/assessments", content=second, headers=headers)
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/fhir+json"
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "conflict"
    assert _patients(app) == ["ID-A"]


async def test_study_in_the_url(client: httpx.AsyncClient) -> None:
    data = _sr()
    study = dcmread(BytesIO(data)).StudyInstanceUID
    assert (await _stow(client, data, path=f"/{study}")).status_code == 200
    response = await _stow(client, _sr(day="20240301"), path="/1.2.3.4")
    assert (response.status_code, _reasons(response)) == (409, [0xC112])


async def test_a_part_of_another_media_type_is_not_understood(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/dicomweb/studies",
        content=_body(_sr(), media_type="application/dicom+json"),
        headers={"Content-Type": STOW_TYPE},
    )
    assert (response.status_code, _reasons(response)) == (409, [0xC100])


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        ("application/dicom", b"x", 415),
        (f'multipart/related; type="application/dicom+json"; boundary={BOUNDARY}', b"x", 415),
        ('multipart/related; type="application/dicom"', b"x", 400),
        (STOW_TYPE, b"no boundary inside", 400),
        (STOW_TYPE, f"--{BOUNDARY}--".encode(), 400),
        (STOW_TYPE, f"--{BOUNDARY}\r\n\r\ntruncated".encode(), 400),
    ],
)
async def test_broken_envelopes(
    client: httpx.AsyncClient, content_type: str, body: bytes, status: int
) -> None:
    response = await client.post(
        "/dicomweb/studies", content=body, headers={"Content-Type": content_type}
    )
    assert response.status_code == status
    assert response.headers["content-type"] == "application/dicom+json"
    assert response.headers["warning"].startswith("299 tumour-response")


@pytest.fixture
async def small_client(database_url: str) -> Any:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=database_url,
        stow_max_request_bytes=200_000,
        stow_max_parts=2,
        stow_max_part_bytes=100_000,
    )
    app: FastAPI = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


async def test_stow_instances_read_in_the_companion_process_answer_as_read_in_the_server(
    settings: Settings, tmp_path: Path
) -> None:
    """STOW-RS with the production default (TR_SR_READ_PROCESS=true) stores and refuses
    what the read in the server does, each refusal with its reason."""
    good = _sr("20240105", 50, "STOW-READER")
    requests = [
        ([good, CT_IMAGE, _sr("20240301", 30, "STOW-READER"), b"DICM?"], ""),
        ([_sr("20240401", 20, "STOW-READER")], "/1.2.3"),  # another study than the URL's
    ]

    async def send(client: httpx.AsyncClient) -> readers.Answers:
        found = []
        for parts, path in requests:
            response = await _stow(client, *parts, path=path)
            found.append((response.status_code, response.json()))
        return found

    answers = await readers.with_each_reader(settings, tmp_path, send)
    assert [status for status, _ in answers[True]] == [202, 409]
    assert _reasons_of(answers[True][0][1]) == [0x0122, 0xC100]
    assert _reasons_of(answers[True][1][1]) == [0xC112]
    assert answers[True] == answers[False]


@pytest.mark.parametrize(
    ("parts", "status", "reason"),
    [
        ([b"x" * 100_001], 413, 0xC101),
        ([b"x" * 90_000] * 3, 413, 0xC101),  # request over 200 000 bytes
        ([b"x"] * 3, 400, 0xC101),  # more than 2 parts
    ],
)
async def test_caps(small_client: httpx.AsyncClient, parts: list[bytes], status: int, reason: int):
    response = await _stow(small_client, *parts)
    assert response.status_code == status
    other_failures = response.json()["0008119A"]["Value"]
    assert other_failures == [{REASON: {"vr": "US", "Value": [reason]}}]


async def test_declared_length_over_the_cap_is_refused_before_reading(
    small_client: httpx.AsyncClient,
) -> None:
    response = await small_client.post(
        "/dicomweb/studies",
        content=b"x",
        headers={"Content-Type": STOW_TYPE, "Content-Length": "300000"},
    )
    assert response.status_code == 413


async def test_post_assessments_reads_every_part(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/assessments",
        content=_body(_sr("20240105", 60), _sr("20240308", 30)),
        headers={"Content-Type": STOW_TYPE},
    )
    assert response.status_code == 200, response.text
    reports = [
        entry["resource"]
        for entry in response.json()["entry"]
        if entry["resource"]["resourceType"] == "DiagnosticReport"
    ]
    assert [report["effectiveDateTime"] for report in reports] == ["2024-01-05", "2024-03-08"]
    assert "PR" in reports[1]["conclusion"]


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        (STOW_TYPE, f"--{BOUNDARY}--".encode(), 400),
        (f'multipart/related; type="text/plain"; boundary={BOUNDARY}', b"", 415),
    ],
)
async def test_post_assessments_refuses_bad_multipart(
    client: httpx.AsyncClient, content_type: str, body: bytes, status: int
) -> None:
    response = await client.post(
        "/assessments", content=body, headers={"Content-Type": content_type}
    )
    assert response.status_code == status
    assert response.json()["resourceType"] == "OperationOutcome"
