"""The audit trail of the HTTP API (issue 6; reliability.md section 3, "Audit trail
completeness", and section 7): one AuditEvent per request, rejections included, written
with the data or not at all, searchable at ``GET /fhir/AuditEvent``."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from io import BytesIO
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydicom import dcmread

from service import services
from service.config import Settings
from service.entrypoints.api.app import create_app
from tests.fhir_factory import PATIENT_SYSTEM, measurement_bundle
from tests.fhir_validation import validate_bundle
from tests.fuzz.checks import stored_rows
from tests.sr_factory import LesionSpec, make_sr, sr_bytes

pytestmark = pytest.mark.anyio

DICOM = {"Content-Type": "application/dicom"}
NOT_DICOM = {"content": b"x", "headers": DICOM}
FHIR = {"Content-Type": "application/fhir+json"}
BAD_JSON = {"content": b"{", "headers": FHIR}


def _sr(patient_id: str = "AUDIT-1", value: float = 40) -> bytes:
    lesions = [LesionSpec("T1", long_axis_mm=value)]
    return sr_bytes(make_sr(patient_id=patient_id, study_date="20240105", lesions=lesions))


async def _events(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    """The AuditEvents matching *params*, newest first (this search is audited too)."""
    answer = await client.get("/fhir/AuditEvent", params=params)
    assert answer.status_code == 200, answer.text
    bundle = answer.json()
    validate_bundle(bundle)
    assert bundle["total"] >= len(bundle["entry"])
    return [entry["resource"] for entry in bundle["entry"]]


def _codes(event: dict[str, Any]) -> tuple[str, str, str, str]:
    return event["type"]["code"], event["subtype"][0]["code"], event["action"], event["outcome"]


# method, URL, request arguments, (type, subtype, action, outcome), the caller: the
# token's subject ("local" with auth off, "anonymous" on public routes), None when no
# route was found (nothing authenticated)
REQUESTS: list[tuple[str, str, dict[str, Any], tuple[str, str, str, str], str | None]] = [
    ("GET", "/health", {}, ("rest", "read", "R", "0"), "anonymous"),
    ("GET", "/ready", {}, ("rest", "read", "R", "0"), "anonymous"),
    ("GET", "/fhir/metadata", {}, ("rest", "capabilities", "E", "0"), "anonymous"),
    ("GET", "/fhir/Patient?identifier=urn:x|1", {}, ("rest", "search-type", "E", "0"), "local"),
    ("GET", "/fhir/DiagnosticReport/nope", {}, ("rest", "read", "R", "4"), "local"),
    ("GET", "/fhir/Patient?colour=red", {}, ("rest", "search-type", "E", "4"), "local"),
    ("GET", "/nowhere", {}, ("rest", "read", "R", "4"), None),
    ("GET", "/assessments", {}, ("rest", "read", "R", "4"), None),  # 405
    ("POST", "/assessments", BAD_JSON, ("rest", "create", "C", "4"), "local"),
    ("POST", "/fhir", {"content": b"[]", "headers": FHIR}, ("rest", "create", "C", "4"), "local"),
    ("POST", "/dicomweb/studies", NOT_DICOM, ("rest", "create", "C", "4"), "local"),
]


@pytest.mark.parametrize(("method", "url", "extra", "expected", "caller"), REQUESTS)
async def test_every_request_gets_exactly_one_audit_event(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    extra: dict[str, Any],
    expected: tuple[str, str, str, str],
    caller: str | None,
) -> None:
    answer = await client.request(method, url, **extra)
    (event,) = await _events(client)
    assert _codes(event) == expected
    assert ("outcomeDesc" in event) == (expected[3] != "0")
    if expected[3] != "0":
        assert event["outcomeDesc"] == f"HTTP {answer.status_code}"
    client_agent, server_agent = event["agent"]
    who = {"display": "anonymous"} if caller is None else {"identifier": {"value": caller}}
    assert client_agent["requestor"] and client_agent["who"] == who
    assert client_agent["network"]["address"] == "127.0.0.1"  # httpx's ASGI client
    assert server_agent["who"]["display"] == "tumour-response"
    recorded = datetime.fromisoformat(event["recorded"])
    assert abs(datetime.now(UTC) - recorded) < timedelta(minutes=1)
    searched, again = await _events(client)  # the first search was audited as well
    assert again == event and _codes(searched) == ("rest", "search-type", "E", "0")


async def test_a_stored_sr_names_its_patient_and_instance(client: httpx.AsyncClient) -> None:
    data = _sr()
    answer = await client.post("/assessments", content=data, headers=DICOM)
    assert answer.status_code == 200, answer.text
    (event,) = await _events(client)
    assert _codes(event) == ("rest", "create", "C", "0")
    whats = [entity["what"] for entity in event["entity"]]
    patient = next(what for what in whats if what.get("reference", "").startswith("Patient/"))
    assert patient["identifier"] == {"system": PATIENT_SYSTEM, "value": "AUDIT-1"}
    uid = dcmread(BytesIO(data)).SOPInstanceUID
    assert {"system": "urn:dicom:uid", "value": f"urn:oid:{uid}"} in [
        what.get("identifier") for what in whats
    ]
    patient_id = patient["reference"].removeprefix("Patient/")
    assert [e["id"] for e in await _events(client, patient=f"Patient/{patient_id}")] == [
        event["id"]
    ]


async def test_a_search_records_its_query(client: httpx.AsyncClient) -> None:
    await client.get("/fhir/DiagnosticReport", params={"date": "ge2024-01-01"})
    (event,) = await _events(client)
    (query,) = [entity for entity in event["entity"] if "query" in entity]
    assert base64.b64decode(query["query"]) == b"date=ge2024-01-01"


async def test_a_refused_write_is_audited_and_stores_no_data(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    answer = await client.post("/assessments", content=_sr(value=-5), headers=DICOM)
    assert 400 <= answer.status_code < 500
    assert stored_rows(settings) == 0
    (event,) = await _events(client, outcome="4")
    assert event["action"] == "C" and event["outcomeDesc"] == f"HTTP {answer.status_code}"


async def test_a_bundle_names_its_interaction(client: httpx.AsyncClient) -> None:
    bundle = measurement_bundle("AUDIT-2", "2024-01-05", [("T1", 40)])
    answer = await client.post("/fhir", json={**bundle, "type": "batch"}, headers=FHIR)
    assert answer.status_code == 200, answer.text
    (event,) = await _events(client)
    assert _codes(event) == ("rest", "batch", "C", "0")


@pytest.fixture
async def fragile_app(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[FastAPI]:
    """The app, where assessing fails once the report's rows are written (before commit)."""

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("injected failure between the data rows and the commit")

    monkeypatch.setattr(services, "_timepoint", fail)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


async def test_a_failure_before_commit_leaves_no_data_and_only_its_failure_audit(
    fragile_app: FastAPI, settings: Settings
) -> None:
    transport = httpx.ASGITransport(app=fragile_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = await client.post("/assessments", content=_sr(), headers=DICOM)
        assert answer.status_code == 500
        assert stored_rows(settings) == 0
        (event,) = await _events(client)
    assert _codes(event) == ("rest", "create", "C", "8")
    assert event["outcomeDesc"] == "HTTP 500"


async def test_search_parameters(client: httpx.AsyncClient) -> None:
    await client.get("/nowhere")
    await client.post("/assessments", content=_sr("AUDIT-3"), headers=DICOM)
    today = datetime.now(UTC).date()
    created = await _events(client, subtype="create")
    assert [_codes(e)[1] for e in created] == ["create"]
    assert len(await _events(client, outcome="4,0", type="rest")) == 3
    assert len(await _events(client, outcome="4")) == 1
    assert len(await _events(client, type="http://dicom.nema.org/resources/ontology/DCM|rest")) == 0
    assert len(await _events(client, date=f"gt{today.isoformat()}")) == 0
    assert len(await _events(client, date=today.isoformat(), _count="2")) == 2
    answer = await client.get("/fhir/AuditEvent", params={"outcome": "5"})
    assert answer.status_code == 400
    answer = await client.get("/fhir/AuditEvent", params={"entity": "x"})
    assert answer.status_code == 400
    answer = await client.get("/fhir/AuditEvent", params={"_count": "0"})
    assert answer.status_code == 400
