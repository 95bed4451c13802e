"""Every criterion through POST /assessments (contract sections 2 and 4)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fhir_validation import validate_bundle
from tests.sr_factory import LesionSpec, make_sr, sr_bytes

pytestmark = pytest.mark.anyio

DICOM = {"Content-Type": "application/dicom"}
METHOD = {"recist-1.1": "C124415", "irecist": "C136711", "choi": "C122394", "mchoi": "C126042"}


async def _post(
    client: httpx.AsyncClient, day: str, size: float, hu: float, **params: Any
) -> dict[str, Any]:
    body = sr_bytes(
        make_sr(
            patient_id="CRIT-1",
            study_date=day,
            lesions=[LesionSpec("T1", long_axis_mm=size, role="target", mean_hu=hu)],
        )
    )
    response = await client.post("/assessments", content=body, headers=DICOM, params=params)
    assert response.status_code == 200, response.text
    bundle: dict[str, Any] = response.json()
    validate_bundle(bundle)
    return bundle


def _overall(bundle: dict[str, Any], code: str = "C96613") -> dict[str, str]:
    """Criterion method code -> response code of the first report's result Observations."""
    found = {}
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if (
            resource["resourceType"] == "Observation"
            and resource["code"]["coding"][0]["code"] == code
        ):
            found[resource["method"]["coding"][0]["code"]] = resource["valueCodeableConcept"][
                "coding"
            ][0]["code"]
    return found


async def test_choi_sees_a_density_response_that_recist_calls_stable(
    client: httpx.AsyncClient,
) -> None:
    await _post(client, "20240101", 100, 80)
    bundle = await _post(client, "20240301", 100, 60, criteria=["choi", "mchoi"])
    assert _overall(bundle) == {
        METHOD["recist-1.1"]: "C18213",  # SD
        METHOD["choi"]: "C18058",  # PR: density -25 %
        METHOD["mchoi"]: "C18213",  # SD: modified Choi also needs -10 % size
    }
    report = bundle["entry"][0]["resource"]
    assert "RECIST 1.1, Choi criteria, Modified Choi" in report["code"]["text"]
    assert len(report["conclusionCode"]) == 3


async def test_the_advisor_chooses_choi_for_gist_on_a_tki(client: httpx.AsyncClient) -> None:
    await _post(client, "20240101", 100, 80)
    bundle = await _post(client, "20240301", 100, 60, primary="gist", therapy="tki")
    assert set(_overall(bundle)) == {METHOD["recist-1.1"], METHOD["choi"]}
    assert (
        "choi: GIST on a tyrosine-kinase inhibitor" in bundle["entry"][0]["resource"]["conclusion"]
    )


async def test_irecist_calls_recist_progression_unconfirmed(client: httpx.AsyncClient) -> None:
    await _post(client, "20240101", 50, 80)
    bundle = await _post(client, "20240212", 61, 80, therapy="immunotherapy")
    assert _overall(bundle) == {METHOD["recist-1.1"]: "C35571", METHOD["irecist"]: "C142360"}
    best = _overall(bundle, "C94536")
    assert best[METHOD["irecist"]] == "C142360"


@pytest.mark.parametrize(
    ("params", "expression"),
    [
        ({"primary": "lung"}, "query.primary"),
        ({"therapy": "magic"}, "query.therapy.0"),
        ({"choi_hu_aggregation": "median"}, "query.choi_hu_aggregation"),
    ],
)
async def test_an_unknown_setting_value_is_400(
    client: httpx.AsyncClient, params: dict[str, str], expression: str
) -> None:
    body = sr_bytes(
        make_sr(patient_id="CRIT-2", study_date="20240101", lesions=[LesionSpec("T1", 30)])
    )
    response = await client.post("/assessments", content=body, headers=DICOM, params=params)
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == [expression]


async def _post_lesion(
    client: httpx.AsyncClient, day: str, spec: LesionSpec, **params: Any
) -> dict[str, Any]:
    body = sr_bytes(make_sr(patient_id="CRIT-3", study_date=day, lesions=[spec]))
    response = await client.post("/assessments", content=body, headers=DICOM, params=params)
    assert response.status_code == 200, response.text
    bundle: dict[str, Any] = response.json()
    validate_bundle(bundle)
    return bundle


async def test_chun_reads_morphology_groups_from_the_sr(client: httpx.AsyncClient) -> None:
    await _post_lesion(client, "20240101", LesionSpec("T1", 40, findings=(("chun-group", "3"),)))
    bundle = await _post_lesion(
        client,
        "20240301",
        LesionSpec("T1", 38, findings=(("chun-group", "1"), ("necrosis", "new"))),
        primary="colorectal",
        therapy=["chemotherapy", "anti-vegf"],
    )
    assert _overall(bundle, "C123625") == {"C126048": "C123601"}  # optimal morphologic
    assert _overall(bundle)["C124415"] == "C18213"  # RECIST SD
    conclusion = bundle["entry"][0]["resource"]["conclusion"]
    assert "T1: necrosis new" in conclusion
    assert "Possible responder: RECIST 1.1 SD with -5 %" in conclusion


async def test_mrecist_reads_viable_diameters_from_the_sr(client: httpx.AsyncClient) -> None:
    await _post_lesion(client, "20240101", LesionSpec("T1", 40, viable_mm=30))
    bundle = await _post_lesion(
        client, "20240301", LesionSpec("T1", 40, viable_mm=20), criteria="mrecist"
    )
    assert _overall(bundle) == {"C124415": "C18213", "C126032": "C18058"}
