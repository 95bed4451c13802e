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
from pydicom.uid import UID, BasicTextSRStorage, Comprehensive3DSRStorage
from pynetdicom import AE, evt
from pynetdicom.pdu import A_ABORT_RQ
from pynetdicom.pdu_primitives import MaximumLengthNotification

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
    day = date(2024, 1, 5)
    with db.open_store(engine) as store:
        reports = store.search_resources(
            "DiagnosticReport",
            patient=PatientIdentity(DEFAULT_PATIENT_SYSTEM, "CSTORE-1"),
            since=day,
            until=day,
        )
    engine.dispose()
    assert [report.version for report in reports] == [1]
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


def test_a_study_known_under_another_patient_is_refused_with_c121(
    listener: Listener, tmp_path: Path
) -> None:
    first = make_sr(patient_id="ID-A", study_date="20240105", lesions=[LesionSpec("T1", 40)])
    second = make_sr(patient_id="ID-B", study_date="20240105", lesions=[LesionSpec("T1", 40)])
    second.StudyInstanceUID = first.StudyInstanceUID
    paths = [tmp_path / "a.dcm", tmp_path / "b.dcm"]
    for path, dataset in zip(paths, (first, second), strict=True):
        path.write_bytes(sr_bytes(dataset))
    assert _dcmtk("storescu", listener, "-R", str(paths[0])).returncode == 0
    result = _dcmtk("storescu", listener, "-R", str(paths[1]))
    output = result.stdout + result.stderr
    assert "0xc121" in output.lower() and "Success" not in output, output
    assert _stored_patients(listener) == [PatientIdentity(DEFAULT_PATIENT_SYSTEM, "ID-A")]


# -- transport guard (reliability.md sections 4 and 5) ----------------------------------

GUARD_LIMITS = {
    "TR_DIMSE_MAX_PDU_BYTES": "4096",  # announced
    "TR_DIMSE_ABORT_PDU_BYTES": "8192",
    "TR_DIMSE_MAX_DATASET_BYTES": "20000",
}


@pytest.fixture
def guarded(tmp_path: Path, database_url: str) -> Iterator[Listener]:
    """A listener with small byte budgets, so that a few-lesion SR overruns them."""
    port = free_port()
    with running_server(tmp_path, database_url, TR_DIMSE_PORT=str(port), **GUARD_LIMITS) as base:
        yield Listener(base, port, database_url)


def _lesions_sr(tmp_path: Path, lesions: int) -> Path:
    """An SR of *lesions* targets: 8 make about 15 KB, 12 about 21 KB."""
    dataset = make_sr(
        patient_id=f"GUARD-{lesions}",
        study_date="20240105",
        lesions=[LesionSpec(f"T{index}", long_axis_mm=10 + index) for index in range(lesions)],
    )
    path = tmp_path / f"lesions-{lesions}.dcm"
    path.write_bytes(sr_bytes(dataset))
    return path


def _stored_patients(listener: Listener) -> list[PatientIdentity]:
    engine = db.create_engine(listener.database_url)
    with db.open_store(engine) as store:
        patients = store.patients()
    engine.dispose()
    return patients


def _assert_still_serving(listener: Listener, tmp_path: Path) -> None:
    """The next association stores a small SR: the listener survived the abort."""
    result = _dcmtk("storescu", listener, "-R", str(_lesions_sr(tmp_path, 1)))
    assert result.returncode == 0 and "Success" in result.stdout + result.stderr, result.stderr
    assert _stored_patients(listener) == [PatientIdentity(DEFAULT_PATIENT_SYSTEM, "GUARD-1")]


def test_a_pdu_over_the_hard_cap_aborts_the_association(guarded: Listener, tmp_path: Path) -> None:
    path = _lesions_sr(tmp_path, 8)
    assert 8192 < path.stat().st_size < 20000  # over the PDU cap, within the data set budget
    ae = AE(ae_title="OVERSIZE")
    ae.add_requested_context(Comprehensive3DSRStorage)
    received: list[object] = []
    assoc = ae.associate(
        "127.0.0.1",
        guarded.port,
        ae_title=AE_TITLE,
        evt_handlers=[(evt.EVT_PDU_RECV, lambda event: received.append(event.pdu))],
    )
    assert assoc.is_established
    assert assoc.acceptor.maximum_length == 4096  # what the listener announced
    # A peer that ignores it: the negotiated length becomes 0 (no limit), so pynetdicom
    # sends the whole message in one PDU.
    negotiated = next(
        item
        for item in assoc.acceptor.user_information
        if isinstance(item, MaximumLengthNotification)
    )
    negotiated.maximum_length_received = 0
    status = assoc.send_c_store(dcmread(path))
    assert "Status" not in status  # no C-STORE response
    assoc.join(timeout=30)
    assert assoc.is_aborted
    aborts = [
        (pdu.source, pdu.reason_diagnostic) for pdu in received if isinstance(pdu, A_ABORT_RQ)
    ]
    assert aborts == [(2, 6)]  # A-ABORT from the provider: invalid PDU parameter value
    assert _stored_patients(guarded) == []
    assert "DIMSE association aborted: a PDU of" in (tmp_path / "server.log").read_text()
    _assert_still_serving(guarded, tmp_path)


def test_a_data_set_over_the_budget_aborts_the_association(
    guarded: Listener, tmp_path: Path
) -> None:
    path = _lesions_sr(tmp_path, 12)
    assert path.stat().st_size > 20000
    result = _dcmtk("storescu", guarded, "-R", str(path))  # 4 KiB PDUs, as negotiated
    output = result.stdout + result.stderr
    assert "abort" in output.lower() and "Success" not in output, output
    assert _stored_patients(guarded) == []
    assert "DIMSE association aborted: a data set of more than 20000 bytes" in (
        (tmp_path / "server.log").read_text()
    )
    _assert_still_serving(guarded, tmp_path)


# -- calling AE allow-list (issue 6) ----------------------------------------------------


@pytest.fixture
def allow_listed(tmp_path: Path, database_url: str) -> Iterator[Listener]:
    port = free_port()
    allowed = {"TR_DIMSE_ALLOWED_CALLING_AES": " ORTHANC , PACS_A"}
    with running_server(tmp_path, database_url, TR_DIMSE_PORT=str(port), **allowed) as base:
        yield Listener(base, port, database_url)


def test_an_unknown_calling_ae_title_is_rejected_permanently(
    allow_listed: Listener, tmp_path: Path
) -> None:
    path = _lesions_sr(tmp_path, 1)
    refused = _dcmtk("storescu", allow_listed, "-aet", "INTRUDER", "-R", str(path))
    output = (refused.stdout + refused.stderr).lower()
    assert refused.returncode != 0 and "association rejected" in output, output
    assert "rejected permanent" in output and "calling ae title not recognized" in output
    answers: list[tuple[int, int, int]] = []
    ae = AE(ae_title="ALSO_UNKNOWN")
    ae.add_requested_context(Comprehensive3DSRStorage)
    assoc = ae.associate(
        "127.0.0.1",
        allow_listed.port,
        ae_title=AE_TITLE,
        evt_handlers=[
            (
                evt.EVT_ACSE_RECV,
                lambda event: answers.append(
                    (
                        event.primitive.result,
                        event.primitive.result_source,
                        event.primitive.diagnostic,
                    )
                ),
            )
        ],
    )
    assert assoc.is_rejected
    assert answers == [(0x01, 0x01, 0x03)]  # rejected-permanent, service user, calling AE
    assert _stored_patients(allow_listed) == []
    allowed = _dcmtk("storescu", allow_listed, "-aet", "PACS_A", "-R", str(path))
    assert allowed.returncode == 0 and "Success" in allowed.stdout + allowed.stderr
    assert _stored_patients(allow_listed) == [PatientIdentity(DEFAULT_PATIENT_SYSTEM, "GUARD-1")]
