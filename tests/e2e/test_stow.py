"""End to end over STOW-RS with the reference client ``dicomweb-client`` against the
real server process (PS3.18 section 10.5; contract section 2)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from dicomweb_client import DICOMwebClient
from pydicom import dcmread
from requests import HTTPError

from tests.sr_factory import LesionSpec, make_sr, sr_bytes

pytestmark = pytest.mark.e2e

CT_IMAGE = Path(__file__).resolve().parents[1] / "data" / "sr" / "ct_image.dcm"
FAILED, REFERENCED, REASON = "00081198", "00081199", "00081197"


def _sr(day: str, long_axis: float):
    return make_sr(
        patient_id="STOW-E2E", study_date=day, lesions=[LesionSpec("T1", long_axis_mm=long_axis)]
    )


def test_dicomweb_client_stores_and_the_reports_are_assessed(server: str) -> None:
    client = DICOMwebClient(url=f"{server}/dicomweb")
    baseline, follow_up = _sr("20240105", 50), _sr("20240308", 20)
    answer = client.store_instances([baseline, follow_up])
    stored = [item.ReferencedSOPInstanceUID for item in answer.ReferencedSOPSequence]
    assert stored == [baseline.SOPInstanceUID, follow_up.SOPInstanceUID]
    assert "FailedSOPSequence" not in answer
    again = client.store_instances([follow_up], study_instance_uid=follow_up.StudyInstanceUID)
    assert again.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == follow_up.SOPInstanceUID
    # Assessed on arrival: the same SR posted again finds its stored report, version 1.
    response = httpx.post(
        f"{server}/assessments",
        content=sr_bytes(follow_up),
        headers={"Content-Type": "application/dicom"},
        timeout=30,
    )
    report = response.json()["entry"][0]["resource"]
    assert (report["meta"]["versionId"], report["effectiveDateTime"]) == ("1", "2024-03-08")
    assert "PR" in report["conclusion"]


def test_dicomweb_client_sees_409_when_nothing_is_stored(server: str) -> None:
    client = DICOMwebClient(url=f"{server}/dicomweb")
    with pytest.raises(HTTPError) as caught:
        client.store_instances([dcmread(CT_IMAGE)])
    response = caught.value.response
    assert response is not None
    assert response.status_code == 409
    assert response.json()[FAILED]["Value"][0][REASON]["Value"] == [0x0122]


def test_dicomweb_client_sees_c121_for_a_study_of_another_patient(server: str) -> None:
    client = DICOMwebClient(url=f"{server}/dicomweb")
    first = make_sr(patient_id="ID-A", study_date="20240105", lesions=[LesionSpec("T1", 40)])
    second = make_sr(patient_id="ID-B", study_date="20240105", lesions=[LesionSpec("T1", 40)])
    second.StudyInstanceUID = first.StudyInstanceUID
    client.store_instances([first])
    with pytest.raises(HTTPError) as caught:
        client.store_instances([second])
    response = caught.value.response
    assert response is not None and response.status_code == 409
    assert response.json()[FAILED]["Value"][0][REASON]["Value"] == [0xC121]
