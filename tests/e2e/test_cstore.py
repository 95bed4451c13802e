"""End to end over DIMSE: DCMTK ``echoscu``/``storescu`` against the listener the real
server process starts (contract sections 1 and 2; PS3.4 Annex A and B)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydicom import dcmread
from pydicom.uid import UID, BasicTextSRStorage

from service.adapters import db
from service.domain.model import DEFAULT_PATIENT_SYSTEM, PatientIdentity
from tests.e2e.conftest import free_port, running_server
from tests.fhir_validation import validate_bundle
from tests.sr_factory import LesionSpec, make_sr, sr_bytes

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("storescu") is None, reason="DCMTK (storescu) not installed"),
]

AE_TITLE = "TUMOUR_RESPONSE"
CT_IMAGE = Path(__file__).resolve().parents[1] / "data" / "sr" / "ct_image.dcm"


@dataclass(frozen=True)
class Listener:
    base: str
    port: int
    database_url: str


@pytest.fixture
def listener(tmp_path: Path, database_url: str) -> Iterator[Listener]:
    port = free_port()
    with running_server(tmp_path, database_url, TR_DIMSE_PORT=str(port)) as base:
        yield Listener(base, port, database_url)


def _dcmtk(tool: str, listener: Listener, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a DCMTK tool in debug mode (it prints the response status); storescu is given
    ``-R``: propose only the files' SOP classes, as a PACS forwarding rule does."""
    return subprocess.run(
        [tool, "-d", "-aec", AE_TITLE, "127.0.0.1", str(listener.port), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _sr_file(tmp_path: Path, name: str = "sr.dcm", sop_class: str | None = None) -> Path:
    dataset = make_sr(
        patient_id="CSTORE-1", study_date="20240105", lesions=[LesionSpec("T1", long_axis_mm=40)]
    )
    if sop_class is not None:
        dataset.SOPClassUID = dataset.file_meta.MediaStorageSOPClassUID = UID(sop_class)
    path = tmp_path / name
    path.write_bytes(sr_bytes(dataset))
    return path


def test_echo(listener: Listener) -> None:
    result = _dcmtk("echoscu", listener)
    assert result.returncode == 0, result.stderr


def test_store_commits_and_assesses_before_success(listener: Listener, tmp_path: Path) -> None:
    path = _sr_file(tmp_path)
    result = _dcmtk("storescu", listener, "-R", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout + result.stderr
    # Success came after the commit: the timepoint's report is stored already.
    engine = db.create_engine(listener.database_url)
    with db.open_store(engine) as store:
        stored, _body = store.result(
            PatientIdentity(DEFAULT_PATIENT_SYSTEM, "CSTORE-1"), date(2024, 1, 5)
        )
    engine.dispose()
    assert stored.version == 1
    # The same file by HTTP is the same content (storescu wrote its own meta).
    response = httpx.post(
        f"{listener.base}/assessments",
        content=path.read_bytes(),
        headers={"Content-Type": "application/dicom"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.json()["entry"][0]["resource"]["meta"]["versionId"] == "1"
    again = _dcmtk("storescu", listener, "-R", str(path))  # re-delivery is a success again
    assert again.returncode == 0 and "Success" in again.stdout + again.stderr


def test_basic_text_sr_is_refused_with_c110(listener: Listener, tmp_path: Path) -> None:
    path = _sr_file(tmp_path, "basic.dcm", BasicTextSRStorage)
    result = _dcmtk("storescu", listener, "-R", str(path))
    assert "0xc110" in (result.stdout + result.stderr).lower()


def test_an_image_sop_class_is_refused_at_association(listener: Listener) -> None:
    result = _dcmtk("storescu", listener, "-R", str(CT_IMAGE))
    output = result.stdout + result.stderr
    assert result.returncode != 0 or "no presentation context" in output.lower(), output
    assert "Success" not in output


def test_dimse_stores_go_to_the_configured_tenant(tmp_path: Path, database_url: str) -> None:
    """DIMSE carries no token: C-STORE writes into TR_TENANT (README, Authentication)."""
    port = free_port()
    env = {"TR_DIMSE_PORT": str(port), "TR_TENANT": "clinic-x"}
    with running_server(tmp_path, database_url, **env) as base:
        listener = Listener(base, port, database_url)
        result = _dcmtk("storescu", listener, "-R", str(_sr_file(tmp_path)))
        assert result.returncode == 0, result.stdout + result.stderr
    engine = db.create_engine(listener.database_url)
    with db.open_store(engine) as store:
        patient = PatientIdentity(DEFAULT_PATIENT_SYSTEM, "CSTORE-1")
        assert store.patients("clinic-x") == [patient]
        assert store.patients() == []  # nothing in the default tenant
    engine.dispose()


def _association_events(listener: Listener, expected: int) -> list[dict[str, Any]]:
    """The DIMSE AuditEvents, oldest first, once *expected* are stored (each is saved when
    its association ends, just after the SCU has seen it end)."""
    deadline = time.monotonic() + 10
    while True:
        answer = httpx.get(f"{listener.base}/fhir/AuditEvent", params={"type": "110104"})
        assert answer.status_code == 200, answer.text
        validate_bundle(answer.json())
        events = [entry["resource"] for entry in answer.json()["entry"]]
        if len(events) >= expected or time.monotonic() > deadline:
            return events[::-1]
        time.sleep(0.1)


def test_each_association_is_audited_once(listener: Listener, tmp_path: Path) -> None:
    stored = _sr_file(tmp_path)
    refused = _sr_file(tmp_path, "basic.dcm", BasicTextSRStorage)
    for args in ((), ("-R", str(stored)), ("-R", str(refused)), ("-R", str(CT_IMAGE))):
        _dcmtk("storescu" if args else "echoscu", listener, *args)
    echo, store, refusal, image = _association_events(listener, 4)
    for event in (echo, store, refusal, image):
        assert event["agent"][0]["who"] == {"identifier": {"value": "STORESCU"}} or event is echo
        assert event["agent"][0]["network"]["address"] == "127.0.0.1"
    assert echo["agent"][0]["who"] == {"identifier": {"value": "ECHOSCU"}}
    assert (echo["action"], echo["outcome"], echo.get("entity")) == ("E", "0", None)
    uid = f"urn:oid:{dcmread(stored).SOPInstanceUID}"
    assert (store["action"], store["outcome"]) == ("C", "0")
    identifiers = [entity["what"].get("identifier", {}) for entity in store["entity"]]
    assert {"system": "urn:dicom:uid", "value": uid} in identifiers
    assert {"system": DEFAULT_PATIENT_SYSTEM, "value": "CSTORE-1"} in identifiers
    assert (refusal["action"], refusal["outcome"]) == ("C", "4")
    assert refusal["outcomeDesc"].startswith("instance refused (")
    assert image["action"] == "E" and "entity" not in image
