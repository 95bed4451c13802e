"""Request ids, the access line, the 500 answer and ``GET /metrics`` (README
"Observability"; service/entrypoints/api/observe.py, service/entrypoints/metrics.py)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from service.entrypoints.api import auth
from tests.fhir_factory import measurement_bundle
from tests.sr_factory import LesionSpec, make_sr, sr_bytes

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
DICOM = {"Content-Type": "application/dicom"}
ACCESS_LOGGER = "service.entrypoints.api.observe"


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_sane_request_id_is_echoed_and_logged(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, ACCESS_LOGGER)
    answer = await client.get("/health", headers={"X-Request-ID": "gateway-0123456789"})
    assert answer.headers["x-request-id"] == "gateway-0123456789"
    (line,) = [r for r in caplog.records if r.name == ACCESS_LOGGER]
    assert (line.method, line.route, line.status) == ("GET", "/health", 200)  # type: ignore[attr-defined]
    assert line.duration_ms >= 0  # type: ignore[attr-defined]


@pytest.mark.parametrize("sent", ["short", "has space in it", "x" * 129, "semi;colon-123"])
async def test_an_odd_request_id_is_replaced(client: httpx.AsyncClient, sent: str) -> None:
    answer = await client.get("/health", headers={"X-Request-ID": sent})
    assert answer.headers["x-request-id"] != sent
    assert len(answer.headers["x-request-id"]) == 32


async def test_every_answer_has_a_request_id_even_404(client: httpx.AsyncClient) -> None:
    first = await client.get("/no/such/P-123")
    second = await client.get("/no/such/P-123")
    assert first.status_code == 404
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_an_unexpected_error_is_a_500_naming_only_the_request_id(
    app: FastAPI,
    client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def boom() -> None:
        raise RuntimeError("secret P-999 value")

    app.add_api_route("/boom/{patient}", boom)
    monkeypatch.setitem(auth.ROUTE_SCOPES, ("GET", "/boom/{patient}"), auth.PUBLIC)
    before = _value("tr_http_requests_total", method="GET", route="/boom/{patient}", status="500")
    answer = await client.get("/boom/P-999", headers={"X-Request-ID": "incident-42-abcdef"})
    assert answer.status_code == 500
    assert answer.headers["x-request-id"] == "incident-42-abcdef"
    assert "incident-42-abcdef" in answer.json()["issue"][0]["diagnostics"]
    assert "P-999" not in answer.text
    after = _value("tr_http_requests_total", method="GET", route="/boom/{patient}", status="500")
    assert after == before + 1
    (failure,) = [r for r in caplog.records if r.exc_info]
    assert failure.exc_info is not None and failure.exc_info[0] is RuntimeError


async def test_metrics_count_ingests_verdicts_and_requests_by_template(
    client: httpx.AsyncClient,
) -> None:
    stored = (
        "tr_ingests_total",
        {"channel": "assessments-http", "outcome": "stored", "reason": ""},
    )
    again = (
        "tr_ingests_total",
        {"channel": "assessments-http", "outcome": "re-delivery", "reason": ""},
    )
    refused = (
        "tr_ingests_total",
        {"channel": "assessments-http", "outcome": "refused", "reason": "not-supported"},
    )
    baseline = ("tr_verdicts_total", {"criterion": "recist-1.1", "response": "baseline"})
    partial = ("tr_verdicts_total", {"criterion": "recist-1.1", "response": "PR"})
    counted = [stored, again, refused, baseline, partial]
    before = [_value(name, **labels) for name, labels in counted]

    body = (ROOT / "examples" / "baseline.dcm").read_bytes()
    for _ in range(2):
        assert (await client.post("/assessments", content=body, headers=DICOM)).status_code == 200
    follow_up = (ROOT / "examples" / "follow-up.dcm").read_bytes()
    assert (await client.post("/assessments", content=follow_up, headers=DICOM)).status_code == 200
    text_plain = {"Content-Type": "text/plain"}
    assert (await client.post("/assessments", content=b"x", headers=text_plain)).status_code == 415
    assert (await client.get("/fhir/Patient/some-patient-id")).status_code == 404

    after = [_value(name, **labels) for name, labels in counted]
    assert [b - a for a, b in zip(before, after, strict=True)] == [2, 1, 1, 1, 1]
    exposition = (await client.get("/metrics")).text
    families = {family.name for family in text_string_to_metric_families(exposition)}
    assert {"tr_http_requests", "tr_http_request_duration_seconds", "tr_ingests"} <= families
    assert 'route="/fhir/Patient/{resource_id}"' in exposition
    assert "some-patient-id" not in exposition


async def test_stow_and_fhir_ingests_are_counted_per_channel(client: httpx.AsyncClient) -> None:
    def stored(channel: str) -> float:
        return _value("tr_ingests_total", channel=channel, outcome="stored", reason="")

    before = stored("stow-rs"), stored("fhir")
    part = sr_bytes(
        make_sr(patient_id="OBS-1", study_date="20240101", lesions=[LesionSpec("T1", 30)])
    )
    boundary = "b0undary"
    body = (
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + part
        + f"\r\n--{boundary}--\r\n".encode()
    )
    content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    answer = await client.post(
        "/dicomweb/studies", content=body, headers={"Content-Type": content_type}
    )
    assert answer.status_code == 200, answer.text
    bundle = measurement_bundle("OBS-2", "2024-01-01", [("T1", 20.0)])
    fhir = {"Content-Type": "application/fhir+json"}
    assert (await client.post("/fhir", content=json.dumps(bundle), headers=fhir)).status_code == 200
    assert (stored("stow-rs"), stored("fhir")) == (before[0] + 1, before[1] + 1)
