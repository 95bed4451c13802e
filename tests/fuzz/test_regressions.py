"""One test per bug the fuzzers found (reliability.md section 8 item 7), through the
reader and through the API (an OperationOutcome, never a 500)."""

from __future__ import annotations

import contextlib
from typing import Any

import httpx
import pytest

from service.adapters.fhir_reader import read_fhir
from service.domain.errors import DomainError
from tests.fhir_factory import measurement_bundle
from tests.fuzz.checks import ALLOWED_CODES


def _with_status(status: Any) -> dict[str, Any]:
    bundle = measurement_bundle("REGRESSION", "2024-01-05", [("liver", 21.0)])
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "Observation":
            entry["resource"]["status"] = status
    return bundle


CASES = {
    # TypeError: unhashable Bundle.type in the set of Bundle types
    "bundle-type-array": {"resourceType": "Bundle", "type": ["transaction"], "entry": []},
    # IndexError: a Bundle without entries
    "bundle-without-entries": {"resourceType": "Bundle", "type": "transaction"},
    # AttributeError: an Observation.code that is not an object
    "observation-code-number": {"resourceType": "Observation", "status": "final", "code": 1},
}


@pytest.mark.parametrize("document", CASES.values(), ids=CASES.keys())
def test_the_reader_refuses_with_a_domain_error(document: dict[str, Any]) -> None:
    with pytest.raises(DomainError):
        read_fhir(document, digest="regression")


def test_an_observation_status_that_is_not_a_string_is_no_type_error() -> None:
    """TypeError: an unhashable Observation.status looked up in the skipped statuses."""
    with contextlib.suppress(DomainError):
        read_fhir(_with_status({"code": "final"}), digest="regression")


@pytest.mark.anyio
@pytest.mark.parametrize("document", CASES.values(), ids=CASES.keys())
async def test_the_api_answers_an_operation_outcome(
    client: httpx.AsyncClient, document: dict[str, Any]
) -> None:
    response = await client.post(
        "/assessments", json=document, headers={"Content-Type": "application/fhir+json"}
    )
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["issue"][0]["code"] in ALLOWED_CODES
