"""GET /ui/... (contract section 2): the patient page, the timepoint reports at their
stable URLs and the cohort page, rendered from what POST /assessments stored."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from service.adapters import report_render
from service.domain.model import DEFAULT_PATIENT_SYSTEM, PatientIdentity

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = PatientIdentity(DEFAULT_PATIENT_SYSTEM, "EXAMPLE-1")
PAGE = f"/ui/patients/{report_render.page_id(EXAMPLE)}"


@pytest.fixture
async def stored(client: httpx.AsyncClient) -> httpx.AsyncClient:
    for name in ("baseline", "follow-up"):
        body = (ROOT / "examples" / f"{name}.dcm").read_bytes()
        answer = await client.post(
            "/assessments", content=body, headers={"Content-Type": "application/dicom"}
        )
        assert answer.status_code == 200, answer.text
    return client


async def test_patient_page_shows_the_timeline_with_report_links(
    stored: httpx.AsyncClient,
) -> None:
    answer = await stored.get(PAGE)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    page = answer.text
    assert "<h1>Patient EXAMPLE-1</h1>" in page
    assert "<td>2024-03-08</td><td>final</td><td>PR</td><td>PR</td><td>70</td><td>-30</td>" in page
    assert f'href="{PAGE}/reports/2024-01-05.html"' in page
    assert f'href="{PAGE}/reports/2024-03-08.pdf"' in page
    assert page.count("<svg") == 2


async def test_report_urls_answer_html_and_pdf(stored: httpx.AsyncClient) -> None:
    html = await stored.get(f"{PAGE}/reports/2024-03-08.html")
    assert html.status_code == 200
    assert "<td>RECIST 1.1</td><td>PR</td><td>PR</td>" in html.text
    assert "sum of diameters 70 mm vs baseline 100 mm (-30 %)" in html.text
    pdf = await stored.get(f"{PAGE}/reports/2024-03-08.pdf")
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-") and pdf.content.rstrip().endswith(b"%%EOF")


async def test_the_criteria_parameters_apply_to_the_pages(stored: httpx.AsyncClient) -> None:
    page = (await stored.get(f"{PAGE}/reports/2024-03-08.html", params={"criteria": "choi"})).text
    assert "<td>Choi criteria</td>" in page
    refused = await stored.get(PAGE, params={"choi_size_reference": "yesterday"})
    assert refused.status_code == 400
    assert refused.json()["resourceType"] == "OperationOutcome"


async def test_unknown_patient_or_date_is_an_html_404(stored: httpx.AsyncClient) -> None:
    for path in ("/ui/patients/no-such-id", f"{PAGE}/reports/2024-03-09.pdf"):
        answer = await stored.get(path)
        assert answer.status_code == 404, path
        assert answer.headers["content-type"].startswith("text/html")
        assert "<h1>Not found</h1>" in answer.text
    malformed = await stored.get(f"{PAGE}/reports/March.html")
    assert malformed.status_code == 400  # not a date: the API's OperationOutcome


async def test_cohort_page_has_a_waterfall_and_links_each_patient(
    stored: httpx.AsyncClient,
) -> None:
    answer = await stored.get("/ui/cohort")
    assert answer.status_code == 200
    assert '<figure id="waterfall"><svg' in answer.text
    assert f'href="{PAGE}"' in answer.text
    assert "<td>EXAMPLE-1</td><td>2</td><td>-30</td><td>PR</td>" in answer.text


async def test_empty_cohort_says_so(client: httpx.AsyncClient) -> None:
    answer = await client.get("/ui/cohort")
    assert answer.status_code == 200
    assert "No patient has a follow-up yet." in answer.text
