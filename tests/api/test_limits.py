"""The request limits are settings (README "Limits"; reliability.md section 5): a
deployment that lowers one sees its requests refused with the section 4 status."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from service.config import Settings
from service.entrypoints.api.app import create_app
from tests.fhir_factory import measurement_bundle
from tests.fuzz.dicom_bytes import deflated, zeros_element
from tests.fuzz.hostile import report

pytestmark = pytest.mark.anyio

FHIR = {"Content-Type": "application/fhir+json"}


@pytest.fixture
async def tight(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=f"sqlite:///{tmp_path / 'limits.db'}",
        fhir_max_resource_bytes=2000,
        fhir_max_bundle_bytes=6000,
        json_max_depth=6,
        json_max_array_items=5,
        json_max_string_bytes=200,
        json_max_number_chars=10,
        sr_max_inflated_bytes=256 * 1024,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


def _code(answer: httpx.Response) -> tuple[int, str]:
    return answer.status_code, answer.json()["issue"][0]["code"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"resourceType": "Observation", "note": [{"text": "x" * 2500}]}, (413, "too-long")),
        ({"resourceType": "Observation", "a": [[[[[[[]]]]]]]}, (400, "too-costly")),
        ({"resourceType": "Observation", "a": list(range(6))}, (400, "too-costly")),
        ({"resourceType": "Observation", "a": "y" * 201}, (400, "too-costly")),
        ({"resourceType": "Observation", "a": 12345678901}, (400, "too-costly")),
    ],
    ids=["resource-bytes", "depth", "array-items", "string-bytes", "number-chars"],
)
async def test_each_json_limit_is_the_configured_one(
    tight: httpx.AsyncClient, body: dict[str, object], expected: tuple[int, str]
) -> None:
    answer = await tight.post("/fhir/Observation", content=json.dumps(body), headers=FHIR)
    assert _code(answer) == expected, answer.text


async def test_the_bundle_limit_holds_on_both_routes(tight: httpx.AsyncClient) -> None:
    bundle = measurement_bundle("LIMIT-1", "2024-01-01", [("T1", 10.0), ("T2", 11.0)])
    big = json.dumps(bundle) + " " * 6000
    for path in ("/fhir", "/assessments"):
        answer = await tight.post(path, content=big, headers=FHIR)
        assert _code(answer) == (413, "too-long"), (path, answer.text)


async def test_the_inflated_size_of_a_deflated_sr_is_the_configured_one(
    tight: httpx.AsyncClient,
) -> None:
    dicom = {"Content-Type": "application/dicom"}
    padded = deflated(report(), zeros_element(1 << 19, chunk=1 << 16))  # past 256 KiB
    refused = await tight.post("/assessments", content=padded, headers=dicom)
    assert _code(refused) == (400, "too-costly"), refused.text
    assert "262144 bytes" in refused.json()["issue"][0]["diagnostics"]
    within = await tight.post("/assessments", content=deflated(report()), headers=dicom)
    assert within.status_code == 200, within.text
