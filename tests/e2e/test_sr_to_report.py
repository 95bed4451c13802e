"""End to end: a baseline SR then a follow-up SR to the real server process."""

from __future__ import annotations

import httpx
import pytest

from tests.fhir_validation import validate_bundle
from tests.sr_factory import LesionSpec, make_sr, sr_bytes

pytestmark = pytest.mark.e2e

NCIT_PR = "C18058"


def _post(base: str, day: str, t1: float, t2: float) -> httpx.Response:
    dataset = make_sr(
        patient_id="E2E-1",
        study_date=day,
        lesions=[
            LesionSpec("T1", long_axis_mm=t1, role="target", site="liver"),
            LesionSpec("T2", long_axis_mm=t2, role="target", site="liver"),
        ],
    )
    return httpx.post(
        f"{base}/assessments",
        content=sr_bytes(dataset),
        headers={"Content-Type": "application/dicom"},
        timeout=30,
    )


def test_baseline_and_follow_up_srs_give_a_recist_pr(server: str) -> None:
    assert _post(server, "20240105", 60, 40).status_code == 200
    response = _post(server, "20240308", 42, 28)
    assert response.status_code == 200, response.text
    bundle = response.json()
    validate_bundle(bundle)
    observations = {
        entry["resource"]["code"]["coding"][0]["code"]: entry["resource"]
        for entry in bundle["entry"]
        if entry["resource"]["resourceType"] == "Observation"
    }
    overall = observations["C96613"]
    assert overall["method"]["coding"][0]["code"] == "C124415"
    assert overall["valueCodeableConcept"]["coding"][0]["code"] == NCIT_PR
    assert observations["C96631"]["valueQuantity"] == {
        "value": 70.0,
        "unit": "mm",
        "system": "http://unitsofmeasure.org",
        "code": "mm",
    }
    assert observations["C112370"]["valueQuantity"]["value"] == -30.0
    report = bundle["entry"][0]["resource"]
    assert report["effectiveDateTime"] == "2024-03-08"
    assert "PR" in report["conclusion"]
