"""Every criterion reachable with FHIR input (contract sections 2-4; issue 3)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.fhir_factory import (
    DCM,
    PATIENT_SYSTEM,
    SNOMED,
    UCUM,
    coding,
    measurement_bundle,
    observation,
)
from tests.fhir_validation import validate_bundle

pytestmark = pytest.mark.anyio

FHIR_JSON = {"Content-Type": "application/fhir+json"}
PROJECT = "http://tumour-response.org/fhir/CodeSystem/tr"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
METHOD = {
    "recist-1.1": "C124415",
    "irecist": "C136711",
    "choi": "C122394",
    "mchoi": "C126042",
    "chun": "C126048",
    "mrecist": "C126032",
}


def _lesion_url(patient_id: str, label: str) -> str:
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{patient_id}/{label}')}"


def _with(bundle: dict[str, Any], *resources: dict[str, Any]) -> dict[str, Any]:
    for resource in resources:
        bundle["entry"].append({"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": resource})
    return bundle


def _lesion_value(patient_id: str, day: str, code: dict[str, Any], **value: Any) -> dict[str, Any]:
    return observation(patient_id, day, _lesion_url(patient_id, "T1"), code, **value)


def _hu(patient_id: str, day: str, hu: float) -> dict[str, Any]:
    quantity = {"value": hu, "unit": "HU", "system": UCUM, "code": "[hnsf'U]"}
    return _lesion_value(
        patient_id,
        day,
        coding(DCM, "112181", "Mean Attenuation Coefficient"),
        valueQuantity=quantity,
    )


def _setting(patient_id: str, condition: str, drug: str) -> list[dict[str, Any]]:
    subject = {"identifier": {"system": PATIENT_SYSTEM, "value": patient_id}}
    return [
        {"resourceType": "Condition", "subject": subject, "code": coding(SNOMED, condition)},
        {
            "resourceType": "MedicationStatement",
            "status": "active",
            "subject": subject,
            "medicationCodeableConcept": coding(RXNORM, drug),
        },
    ]


async def _post(client: httpx.AsyncClient, bundle: dict[str, Any], **params: Any) -> dict[str, Any]:
    response = await client.post("/assessments", json=bundle, headers=FHIR_JSON, params=params)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    validate_bundle(answer)
    return answer


def _verdicts(bundle: dict[str, Any], code: str = "C96613") -> dict[str, str]:
    """Method code -> response code, in the newest report of the answer."""
    found: dict[str, str] = {}
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if (
            resource["resourceType"] == "Observation"
            and resource["code"]["coding"][0]["code"] == code
        ):
            value = resource["valueCodeableConcept"]["coding"][0]["code"]
            found[resource["method"]["coding"][0]["code"]] = value
    return found


async def test_choi_from_a_gist_setting_and_mean_attenuation(client: httpx.AsyncClient) -> None:
    pid = "FHIR-CHOI"
    baseline = measurement_bundle(pid, "2024-01-01", [("T1", 100)])
    await _post(
        client, _with(baseline, _hu(pid, "2024-01-01", 80), *_setting(pid, "420120006", "282388"))
    )
    follow = _with(measurement_bundle(pid, "2024-03-01", [("T1", 100)]), _hu(pid, "2024-03-01", 60))
    answer = await _post(client, follow)
    assert _verdicts(answer) == {METHOD["recist-1.1"]: "C18213", METHOD["choi"]: "C18058"}
    both = await _post(client, follow, criteria=["mchoi"])
    assert _verdicts(both) == {METHOD["recist-1.1"]: "C18213", METHOD["mchoi"]: "C18213"}


async def test_irecist_from_an_immunotherapy_setting(client: httpx.AsyncClient) -> None:
    pid = "FHIR-IRECIST"
    await _post(
        client,
        _with(
            measurement_bundle(pid, "2024-01-01", [("T1", 50)]),
            *_setting(pid, "254837009", "1547545"),
        ),
    )
    answer = await _post(client, measurement_bundle(pid, "2024-02-12", [("T1", 61)]))
    assert _verdicts(answer) == {METHOD["recist-1.1"]: "C35571", METHOD["irecist"]: "C142360"}


async def test_chun_from_morphology_groups(client: httpx.AsyncClient) -> None:
    pid = "FHIR-CHUN"
    group = coding(PROJECT, "chun-group", "Chun morphology group")
    await _post(
        client,
        _with(
            measurement_bundle(pid, "2024-01-01", [("T1", 40)]),
            _lesion_value(pid, "2024-01-01", group, valueInteger=3),
        ),
        criteria="chun",
    )
    answer = await _post(
        client,
        _with(
            measurement_bundle(pid, "2024-03-01", [("T1", 38)]),
            _lesion_value(pid, "2024-03-01", group, valueInteger=2),
        ),
        criteria="chun",
    )
    assert _verdicts(answer, "C123625") == {METHOD["chun"]: "C123602"}  # partial morphologic


async def test_mrecist_from_viable_diameters(client: httpx.AsyncClient) -> None:
    pid = "FHIR-MRECIST"
    viable = coding(PROJECT, "viable-long-axis", "Viable long axis")

    def quantity(value: float) -> dict[str, Any]:
        return {"valueQuantity": {"value": value, "unit": "mm", "system": UCUM, "code": "mm"}}

    await _post(
        client,
        _with(
            measurement_bundle(pid, "2024-01-01", [("T1", 40)]),
            _lesion_value(pid, "2024-01-01", viable, **quantity(30)),
        ),
        primary="hcc",
    )
    answer = await _post(
        client,
        _with(
            measurement_bundle(pid, "2024-03-01", [("T1", 40)]),
            _lesion_value(pid, "2024-03-01", viable, **quantity(21)),
        ),
        primary="hcc",
    )
    assert _verdicts(answer) == {METHOD["recist-1.1"]: "C18213", METHOD["mrecist"]: "C18058"}
