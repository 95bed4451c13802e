"""No PHI in any log line (reliability.md sections 3 and 8.3, L01; README "Observability").

The real server process runs at DEBUG. A slice of the suite's traffic carries canary PHI
(patient id, name, birth date, accession number, a free-text finding, a SOP Instance UID):
SRs by ``POST /assessments``, STOW-RS and C-STORE (DCMTK ``storescu``), FHIR Bundles and
Observations, searches and reads by identifier, and refusals whose messages quote the
input. Every line the process wrote (stdout and stderr) must be a JSON object, the HTTP
and DIMSE lines must carry their request or association id, and no canary may appear in
the log or in ``/metrics``, plainly, in hex or in base64.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydicom.config import disable_value_validation
from pydicom.dataset import Dataset

from service.domain.model import DEFAULT_PATIENT_SYSTEM
from tests.e2e.conftest import free_port, running_server
from tests.fhir_factory import (
    SNOMED,
    body_structure,
    coding,
    long_axis,
    measurement_bundle,
    observation,
)
from tests.sr_factory import LesionSpec, make_sr, sr_bytes

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("storescu") is None, reason="DCMTK (storescu) not installed"),
]

# Unique per run, so a hit can only come from this test's traffic.
_RUN = uuid.uuid4().hex[:8].upper()
PATIENT_ID = f"CANARYPID{_RUN}"
FAMILY_NAME = f"CANARYFAMILY{_RUN}"
ACCESSION = f"ACC{_RUN}"  # SH: at most 16 characters
FINDING = f"CANARY FREE TEXT {_RUN} ENLARGING MASS"
BIRTH_DATE = "19010203"
SOP_INSTANCE = f"2.25.{int(_RUN, 16)}9876543210123"
CSTORE_SOP_INSTANCE = f"2.25.{int(_RUN, 16)}5556667778889"
CANARIES = (
    PATIENT_ID,
    FAMILY_NAME,
    ACCESSION,
    FINDING,
    BIRTH_DATE,
    SOP_INSTANCE,
    CSTORE_SOP_INSTANCE,
)
AE_TITLE = "TUMOUR_RESPONSE"


def encodings(canary: str) -> set[str]:
    """*canary* as it could show in a log: plain, hex (both cases), and base64 at each of
    the three alignments (without the characters that depend on neighbouring bytes)."""
    raw = canary.encode()
    found = {canary, raw.hex(), raw.hex().upper()}
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode()
        start = (offset * 4 + 2) // 3 if offset else 0
        found.add(encoded[start : len(encoded) - 4])
    return found


def _sr(day: str, size: float, sop_instance: str | None = None) -> Dataset:
    dataset = make_sr(
        patient_id=PATIENT_ID,
        study_date=day,
        lesions=[LesionSpec("T1", long_axis_mm=size)],
        sop_instance_uid=sop_instance,
    )
    dataset.PatientName = f"{FAMILY_NAME}^GIVEN"
    dataset.PatientBirthDate = BIRTH_DATE
    dataset.AccessionNumber = ACCESSION
    finding = Dataset()  # a free-text finding at the root of the content tree
    finding.RelationshipType = "CONTAINS"
    finding.ValueType = "TEXT"
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "121071", "DCM", "Finding"
    finding.ConceptNameCodeSequence = [code]
    finding.TextValue = FINDING
    dataset.ContentSequence.append(finding)
    return dataset


def _invalid_sr() -> bytes:
    """An SR whose values pydicom warns about quoting them (a UID with letters, a
    PatientID with a control character): refused, and nothing of it may reach a log."""
    dataset = _sr("20240601", 20)
    with disable_value_validation():
        dataset.PatientID = f"{PATIENT_ID}\x01"
        dataset.StudyInstanceUID = PATIENT_ID
        return sr_bytes(dataset)


def _multipart(*parts: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = b"".join(
        b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + part + b"\r\n"
        for part in parts
    )
    return body + b"--" + boundary.encode() + b"--\r\n", (
        f'multipart/related; type="application/dicom"; boundary={boundary}'
    )


def _traffic(base: str, dimse_port: int, tmp_path: Path) -> list[str]:
    """Send the slice of traffic; return the request ids the server answered with."""
    ids: list[str] = []
    dicom = {"Content-Type": "application/dicom"}
    fhir = {"Content-Type": "application/fhir+json"}
    identifier = f"{DEFAULT_PATIENT_SYSTEM}|{PATIENT_ID}"

    def call(method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = httpx.request(method, f"{base}{path}", timeout=60, **kwargs)
        assert response.status_code < 500, response.text
        ids.append(response.headers["x-request-id"])
        return response

    baseline = sr_bytes(_sr("20240105", 40, SOP_INSTANCE))
    assert call("POST", "/assessments", content=baseline, headers=dicom).status_code == 200
    assert call("POST", "/assessments", content=baseline, headers=dicom).status_code == 200
    changed = sr_bytes(_sr("20240105", 41, SOP_INSTANCE))  # same UID, other content
    assert call("POST", "/assessments", content=changed, headers=dicom).status_code == 409
    call("POST", f"/assessments?criteria={PATIENT_ID}", content=baseline, headers=dicom)
    body, content_type = _multipart(sr_bytes(_sr("20240301", 30)), b"DICM" + ACCESSION.encode())
    stow = call("POST", "/dicomweb/studies", content=body, headers={"Content-Type": content_type})
    assert stow.status_code == 202, stow.text
    call(
        "POST",
        f"/dicomweb/studies/{SOP_INSTANCE}",
        content=body,
        headers={"Content-Type": content_type},
    )

    path = tmp_path / "follow-up.dcm"
    path.write_bytes(sr_bytes(_sr("20240501", 20, CSTORE_SOP_INSTANCE)))
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(_invalid_sr())
    refused = call("POST", "/assessments", content=bad.read_bytes(), headers=dicom)
    assert refused.status_code in (400, 422), refused.text
    for sent in (path, path, bad):
        result = subprocess.run(
            ["storescu", "-aec", AE_TITLE, "127.0.0.1", str(dimse_port), "-R", str(sent)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0 or sent == bad, result.stderr

    bundle = measurement_bundle(PATIENT_ID, "2024-07-01", [("T1", 18.0)])
    bundle["entry"][0]["resource"]["note"] = [{"text": FINDING}]
    assert call("POST", "/fhir", json=bundle, headers=fhir).status_code == 200
    single = observation(
        PATIENT_ID,
        "2024-08-01",
        "#lesion",
        coding(SNOMED, "103339001", "Long axis"),
        contained=[body_structure(PATIENT_ID, "T1") | {"id": "lesion"}],
        identifier=[{"system": "urn:example:obs", "value": ACCESSION}],
        **long_axis(17),
    )
    created = call("POST", "/fhir/Observation", json=single, headers=fhir)
    assert created.status_code in (200, 201), created.text
    duplicate = f'{{"resourceType": "Observation", "{FAMILY_NAME}": 1, "{FAMILY_NAME}": 2}}'
    assert call("POST", "/fhir/Observation", content=duplicate, headers=fhir).status_code == 400
    call(
        "POST",
        "/fhir",
        content=f'{{"resourceType": "Bundle", "type": "{ACCESSION}"}}',
        headers=fhir,
    )

    patients = call("GET", "/fhir/Patient", params={"identifier": identifier}).json()
    patient_id = patients["entry"][0]["resource"]["id"]
    call("GET", "/fhir/DiagnosticReport", params={"subject:identifier": identifier})
    call("GET", "/fhir/DiagnosticReport", params={"subject": f"Patient/{patient_id}"})
    call("GET", "/fhir/DiagnosticReport", params={"date": BIRTH_DATE})
    call("GET", f"/fhir/Patient/{PATIENT_ID}")
    assert call("GET", f"/ui/patients/{patient_id}").status_code == 200
    call("GET", f"/ui/patients/{PATIENT_ID}")
    call("GET", f"/{PATIENT_ID}", headers={"X-Request-ID": f"{ACCESSION} !"})
    metrics = call("GET", "/metrics").text
    assert 'channel="c-store",outcome="stored"' in metrics
    for canary in CANARIES:
        assert not any(form in metrics for form in encodings(canary)), canary
    return ids


def test_no_phi_in_any_log_line_at_debug(tmp_path: Path, database_url: str) -> None:
    dimse_port = free_port()
    env = {"TR_LOG_LEVEL": "DEBUG", "TR_DIMSE_PORT": str(dimse_port)}
    with running_server(tmp_path, database_url, **env) as base:
        request_ids = _traffic(base, dimse_port, tmp_path)
    log = (tmp_path / "server.log").read_text()

    for canary in CANARIES:
        leaked = [form for form in encodings(canary) if form in log]
        assert not leaked, f"{canary!r} in the server log as {leaked}"
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert all({"timestamp", "level", "logger", "message"} <= line.keys() for line in lines)
    access = {line["request_id"]: line for line in lines if line["message"] == "request"}
    assert set(request_ids) <= access.keys()
    assert all(
        line["route"].startswith("/") or line["route"] == "unmatched" for line in access.values()
    )
    stores = [line for line in lines if line["message"] == "C-STORE"]
    assert len(stores) == 3
    assert all(line["association_id"] and line["calling_ae"] for line in stores)
    assert [line["dimse_status"] for line in stores].count("0x0000") == 2
