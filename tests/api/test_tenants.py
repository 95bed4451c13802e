"""Tenant isolation (reliability.md section 3): tenant B never sees tenant A's data; another
tenant's resource answers exactly as an unknown id does (404), and the same SOP Instance UID
is stored independently per tenant."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from pydicom import dcmread

from service.adapters import db, db_schema, report_render
from service.config import Settings
from service.domain.model import DEFAULT_PATIENT_SYSTEM, PatientIdentity
from service.entrypoints.api.app import create_app
from tests.fhir_factory import (
    PATIENT_SYSTEM,
    SNOMED,
    body_structure,
    coding,
    long_axis,
    measurement_bundle,
    observation,
)
from tests.jwt_issuer import Issuer, auth_settings, bearer
from tests.sr_factory import LesionSpec, make_sr, sr_bytes

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = PatientIdentity(DEFAULT_PATIENT_SYSTEM, "EXAMPLE-1")
PAGE = f"/ui/patients/{report_render.page_id(EXAMPLE)}"
UNKNOWN_ID = "0" * 32
DICOM = {"Content-Type": "application/dicom"}
FHIR = {"Content-Type": "application/fhir+json"}
BOUNDARY = "tenant-boundary"
STOW = {"Content-Type": f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'}


@dataclass
class Tenants:
    client: httpx.AsyncClient
    app: FastAPI
    a: dict[str, str]
    b: dict[str, str]


async def _serve(settings: Settings, issuer: Issuer) -> AsyncIterator[Tenants]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield Tenants(
                client,
                app,
                bearer(issuer.token(tenant="tenant-a")),
                bearer(issuer.token(tenant="tenant-b")),
            )


@pytest.fixture
async def tenants(issuer: Issuer, database_url: str) -> AsyncIterator[Tenants]:
    async for found in _serve(auth_settings(issuer, database_url), issuer):
        yield found


async def _assess(t: Tenants, token: dict[str, str], *names: str) -> dict[str, Any]:
    for name in names:
        body = (ROOT / "examples" / f"{name}.dcm").read_bytes()
        answer = await t.client.post("/assessments", content=body, headers={**DICOM, **token})
        assert answer.status_code == 200, answer.text
    bundle: dict[str, Any] = answer.json()
    return bundle


def _same_as_unknown(found: httpx.Response, unknown: httpx.Response, real_id: str) -> None:
    """*found* (another tenant's id) answers byte for byte as *unknown* does."""
    assert found.status_code == unknown.status_code == 404
    assert found.headers["content-type"] == unknown.headers["content-type"]
    assert found.text == unknown.text.replace(UNKNOWN_ID, real_id)


async def test_another_tenants_resources_are_unknown(tenants: Tenants) -> None:
    t = tenants
    bundle = await _assess(t, t.a, "baseline", "follow-up")
    patient = await t.client.get(
        f"/fhir/Patient?identifier={DEFAULT_PATIENT_SYSTEM}|EXAMPLE-1", headers=t.a
    )
    reads = [
        f"{entry['resource']['resourceType']}/{entry['resource']['id']}"
        for entry in [*bundle["entry"], *patient.json()["entry"]]
    ]
    assert {read.split("/")[0] for read in reads} == {
        "DiagnosticReport",
        "Observation",
        "BodyStructure",
        "Patient",
    }
    for read in reads:
        kind, resource_id = read.split("/")
        assert (await t.client.get(f"/fhir/{read}", headers=t.a)).status_code == 200
        found = await t.client.get(f"/fhir/{read}", headers=t.b)
        unknown = await t.client.get(f"/fhir/{kind}/{UNKNOWN_ID}", headers=t.b)
        _same_as_unknown(found, unknown, resource_id)
    patient_id = patient.json()["entry"][0]["resource"]["id"]
    searches = [
        f"/fhir/DiagnosticReport?subject:identifier={DEFAULT_PATIENT_SYSTEM}|EXAMPLE-1",
        f"/fhir/DiagnosticReport?subject=Patient/{patient_id}",
        f"/fhir/Patient?identifier={DEFAULT_PATIENT_SYSTEM}|EXAMPLE-1",
    ]
    for search in searches:
        assert (await t.client.get(search, headers=t.a)).json()["total"] >= 1, search
        assert (await t.client.get(search, headers=t.b)).json()["total"] == 0, search


async def test_another_tenants_pages_are_unknown(tenants: Tenants) -> None:
    t = tenants
    await _assess(t, t.a, "baseline", "follow-up")
    day = "2024-03-08"
    unknown_page = f"/ui/patients/{UNKNOWN_ID}"
    for suffix in ("", f"/reports/{day}.html", f"/reports/{day}.pdf"):
        assert (await t.client.get(PAGE + suffix, headers=t.a)).status_code == 200, suffix
        found = await t.client.get(PAGE + suffix, headers=t.b)
        unknown = await t.client.get(unknown_page + suffix, headers=t.b)
        _same_as_unknown(found, unknown, report_render.page_id(EXAMPLE))
    page_id = report_render.page_id(EXAMPLE)
    assert page_id in (await t.client.get("/ui/cohort", headers=t.a)).text
    assert page_id not in (await t.client.get("/ui/cohort", headers=t.b)).text


async def test_an_assessment_reads_only_its_tenants_history(tenants: Tenants) -> None:
    t = tenants
    a_report = (await _assess(t, t.a, "baseline", "follow-up"))["entry"][0]["resource"]
    assert a_report["conclusion"].startswith("RECIST 1.1: PR")
    # tenant B sends only the follow-up of a patient with the same identifier: its baseline
    b_report = (await _assess(t, t.b, "follow-up"))["entry"][0]["resource"]
    assert not b_report["conclusion"].startswith("RECIST 1.1: PR")
    search = f"/fhir/DiagnosticReport?subject:identifier={DEFAULT_PATIENT_SYSTEM}|EXAMPLE-1"
    assert (await t.client.get(search, headers=t.a)).json()["total"] == 2
    assert (await t.client.get(search, headers=t.b)).json()["total"] == 1


def _multipart(*parts: bytes) -> bytes:
    body = b"".join(
        f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part + b"\r\n"
        for part in parts
    )
    return body + f"--{BOUNDARY}--\r\n".encode()


async def test_the_same_sop_instance_is_stored_per_tenant(tenants: Tenants) -> None:
    t = tenants
    dataset = make_sr(patient_id="STOW-T", study_date="20240105", lesions=[LesionSpec("T1", 50)])
    first = sr_bytes(dataset)
    dataset.ContentDescription = "other content, same SOP Instance UID"
    other = sr_bytes(dataset)
    uid = str(dcmread(BytesIO(first)).SOPInstanceUID)
    for token, data in ((t.a, first), (t.b, other), (t.a, first), (t.b, other)):
        answer = await t.client.post(
            "/dicomweb/studies", content=_multipart(data), headers={**STOW, **token}
        )
        assert answer.status_code == 200, answer.text  # stored, or already stored: no conflict
        assert answer.json()["00081199"]["Value"][0]["00081155"]["Value"] == [uid]
    conflict = await t.client.post(
        "/dicomweb/studies", content=_multipart(other), headers={**STOW, **t.a}
    )
    assert conflict.status_code == 409  # within one tenant, other content is still refused
    with t.app.state.engine.connect() as connection:
        d = db_schema.document
        rows = connection.execute(sa.select(d.c.tenant).where(d.c.uid == uid)).all()
    assert sorted(row.tenant for row in rows) == ["tenant-a", "tenant-b"]


async def test_fhir_references_and_conditional_creates_stay_in_the_tenant(
    tenants: Tenants,
) -> None:
    t = tenants
    bundle = json.dumps(measurement_bundle("FHIR-T", "2024-01-01", [("T1", 40)]))
    assert (await t.client.post("/fhir", content=bundle, headers={**FHIR, **t.a})).is_success
    search = f"/fhir/Patient?identifier={PATIENT_SYSTEM}|FHIR-T"
    (patient,) = (await t.client.get(search, headers=t.a)).json()["entry"]
    # tenant B names tenant A's Patient by id: not resolvable, as an unknown id is not
    by_reference = observation("FHIR-T", "2024-03-01", "#x", {"text": "long axis"})
    by_reference["subject"] = {"reference": f"Patient/{patient['resource']['id']}"}
    refused = await t.client.post(
        "/fhir/Observation", content=json.dumps(by_reference), headers={**FHIR, **t.b}
    )
    assert refused.status_code == 422, refused.text
    # If-None-Exist matching tenant A's Observation creates tenant B's own
    lesion = body_structure("FHIR-T", "T1") | {"id": "lesion"}
    single = observation(
        "FHIR-T",
        "2024-03-01",
        "#lesion",
        coding(SNOMED, "103339001", "Long axis"),
        contained=[lesion],
        identifier=[{"system": "urn:example:obs", "value": "tenant-obs-1"}],
        **long_axis(30),
    )
    condition = {"If-None-Exist": "identifier=urn:example:obs|tenant-obs-1"}
    for token, status in ((t.a, 201), (t.a, 200), (t.b, 201), (t.b, 200)):
        answer = await t.client.post(
            "/fhir/Observation", content=json.dumps(single), headers={**FHIR, **token, **condition}
        )
        assert answer.status_code == status, answer.text


async def test_every_row_has_its_parents_tenant(tenants: Tenants) -> None:
    """The DB check of reliability.md section 3: no child row in another tenant."""
    t = tenants
    await _assess(t, t.a, "baseline", "follow-up")
    await _assess(t, t.b, "baseline")
    p, d, r = db_schema.patient, db_schema.document, db_schema.fhir_resource
    with t.app.state.engine.connect() as connection:
        tenants_seen = connection.execute(sa.select(p.c.tenant).distinct()).scalars().all()
        crossed = connection.execute(
            sa.select(sa.func.count())
            .select_from(r.join(p, r.c.patient_id == p.c.id))
            .where(r.c.tenant != p.c.tenant)
        ).scalar_one()
        crossed += connection.execute(
            sa.select(sa.func.count())
            .select_from(d.join(p, d.c.patient_id == p.c.id))
            .where(d.c.tenant != p.c.tenant)
        ).scalar_one()
    assert sorted(tenants_seen) == ["tenant-a", "tenant-b"]
    assert crossed == 0


async def test_auth_off_stores_in_the_configured_tenant(database_url: str) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, database_url=database_url, tenant="clinic-x"
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            body = (ROOT / "examples" / "baseline.dcm").read_bytes()
            assert (await client.post("/assessments", content=body, headers=DICOM)).is_success
            assert (await client.get(PAGE)).status_code == 200
        with db.open_store(app.state.engine) as store:
            assert store.patients("clinic-x") == [EXAMPLE]
            assert store.patients(db_schema.DEFAULT_TENANT) == []
