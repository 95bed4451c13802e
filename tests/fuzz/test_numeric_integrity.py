"""Numeric integrity (issue 8; reliability.md R4): NaN, infinite, negative or absurd
sizes never reach storage, whichever channel they arrive by: a DICOM SR on
``POST /assessments``, a FHIR Bundle on ``POST /assessments`` and ``POST /fhir``, and
an SR inside a STOW-RS ``multipart/related`` request. After each refusal the database
holds no row at all.

The last line of defence, the database CHECK constraint on non-finite measurement
values, has its own test: ``tests/contract/test_db.py::
test_non_finite_numbers_are_refused_by_the_database``.
"""

from __future__ import annotations

import json

import httpx
import pytest

from service.config import Settings
from tests.fhir_factory import measurement_bundle
from tests.fuzz.checks import ALLOWED_CODES, stored_rows
from tests.fuzz.hostile import with_value

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.filterwarnings("ignore:Invalid value for VR:UserWarning"),
]

ABSURD = ["NaN", "Infinity", "-Infinity", "-5", "1e308", "1e400"]
BOUNDARY = "numeric-integrity"
FAILED_SOP_SEQUENCE = "00081198"


def refused_with_outcome(response: httpx.Response) -> None:
    assert 400 <= response.status_code < 500, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert {issue["code"] for issue in outcome["issue"]} <= ALLOWED_CODES


def fhir_body(value: str) -> bytes:
    """A measurement Bundle whose long axis is the JSON number text *value*."""
    text = json.dumps(measurement_bundle("NUMERIC", "2024-01-05", [("liver", 21.5)]))
    assert text.count("21.5") == 1
    return text.replace("21.5", value).encode()


@pytest.mark.parametrize("value", ABSURD)
async def test_sr_channel(client: httpx.AsyncClient, settings: Settings, value: str) -> None:
    response = await client.post(
        "/assessments", content=with_value(value), headers={"Content-Type": "application/dicom"}
    )
    refused_with_outcome(response)
    assert stored_rows(settings) == 0


@pytest.mark.parametrize("path", ["/assessments", "/fhir"])
@pytest.mark.parametrize("value", ABSURD)
async def test_fhir_channel(
    client: httpx.AsyncClient, settings: Settings, path: str, value: str
) -> None:
    response = await client.post(
        path, content=fhir_body(value), headers={"Content-Type": "application/fhir+json"}
    )
    refused_with_outcome(response)
    assert stored_rows(settings) == 0


@pytest.mark.parametrize("value", ABSURD)
async def test_multipart_channel(client: httpx.AsyncClient, settings: Settings, value: str) -> None:
    part = b"Content-Type: application/dicom\r\n\r\n" + with_value(value)
    body = f"--{BOUNDARY}\r\n".encode() + part + f"\r\n--{BOUNDARY}--\r\n".encode()
    content_type = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
    response = await client.post(
        "/dicomweb/studies", content=body, headers={"Content-Type": content_type}
    )
    assert response.status_code == 409, response.text  # PS3.18 10.5.3: none stored
    assert response.headers["content-type"].startswith("application/dicom+json")
    assert response.json()[FAILED_SOP_SEQUENCE]["Value"]
    assert stored_rows(settings) == 0


def test_the_fhir_body_carries_the_value() -> None:
    assert b'"value": NaN' in fhir_body("NaN")
