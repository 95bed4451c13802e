"""Rendered reports (issue 9): the HTML and PDF of a stored history show the numbers
that decided each verdict, the lesion table and the charts."""

from __future__ import annotations

import io
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from PIL import Image, ImageStat
from sqlalchemy.engine import Engine

from service import services
from service.adapters import content_digest, db, fhir_index, report_pdf, report_render
from service.adapters.db_schema import DEFAULT_TENANT
from service.adapters.report_render import PatientView
from service.domain.model import AssessmentParameters, PatientIdentity
from tests.builders import report, tp

PATIENT = PatientIdentity("urn:tumour-response:patient-id", "P<1>&")  # escaped in HTML
FOLLOW_UP = date(2024, 3, 8)
SVG = "{http://www.w3.org/2000/svg}svg"


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = db.create_engine(database_url)
    db.migrate(engine)
    with db.open_store(engine) as store:
        for day, sizes in (("2024-01-05", (60, 40)), ("2024-03-08", (42, 28))):
            stored = report(day, *tp(day, *sizes).lesions, patient=PATIENT)
            store.add_report(stored, content_digest.digest(day.encode()))
    yield engine
    engine.dispose()


@pytest.fixture
def view(engine: Engine) -> PatientView:
    with db.open_store(engine) as store:
        return services.patient_view(
            store, PATIENT, ["recist-1.1", "choi"], AssessmentParameters(), tenant=DEFAULT_TENANT
        )


def parsed(html: str) -> ET.Element:
    """The page as XML: fails unless it is well-formed."""
    return ET.fromstring(html.removeprefix("<!DOCTYPE html>\n"))


def table_cells(page: ET.Element, table_id: str) -> list[list[str]]:
    table = page.find(f".//table[@id='{table_id}']")
    assert table is not None, table_id
    return [["".join(td.itertext()) for td in row] for row in table.iter("tr")][1:]


def test_report_html_is_well_formed_with_verdicts_lesions_and_charts(view: PatientView) -> None:
    page = parsed(report_render.report_html(view, FOLLOW_UP))
    text = "".join(page.itertext())
    assert "P<1>& (urn:tumour-response:patient-id)" in text  # escaped, then read back
    assert "2024-03-08 (Follow-up, final)" in text
    recist, choi = table_cells(page, "verdicts")
    assert recist[:11] == [
        "RECIST 1.1",
        "PR",
        "PR",
        "-",
        "no",
        "PR",
        "70",
        "100",
        "100",
        "-30",
        "-30",
    ]
    assert "decrease >= 30 %" in recist[11]
    assert choi[0] == "Choi criteria"
    lesions = page.findall(".//table")[1]
    rows = [["".join(td.itertext()) for td in tr] for tr in lesions.iter("tr")][1:]
    assert rows == [
        ["T1", "target", "Liver", "60", "60", "42", "-30", "measured"],
        ["T2", "target", "Liver", "40", "40", "28", "-30", "measured"],
    ]
    for chart in ("sum-chart", "spider-chart"):
        figure = page.find(f".//figure[@id='{chart}']")
        assert figure is not None and figure.find(SVG) is not None, chart
    sum_svg = "".join(page.find(".//figure[@id='sum-chart']").itertext())  # type: ignore[union-attr]
    assert "+20 % from nadir (PD)" in sum_svg and "-30 % from baseline (PR)" in sum_svg
    assert "Recommended criteria" in text


def test_baseline_report_has_no_verdict_and_no_nadir(view: PatientView) -> None:
    page = parsed(report_render.report_html(view, date(2024, 1, 5)))
    recist = table_cells(page, "verdicts")[0]
    assert recist[1] == "baseline" and recist[6] == "100"
    assert page.find(".//figure[@id='sum-chart']") is not None


def test_patient_page_links_every_timepoint_report(view: PatientView) -> None:
    page = parsed(report_render.patient_html(view))
    rows = table_cells(page, "timeline")
    assert [row[:3] for row in rows] == [
        ["2024-01-05", "final", "baseline"],
        ["2024-03-08", "final", "PR"],
    ]
    links = {a.get("href") for a in page.iter("a")}
    pid = fhir_index.patient_resource(PATIENT)["id"]
    assert f"/ui/patients/{pid}/reports/2024-03-08.html" in links
    assert f"/ui/patients/{pid}/reports/2024-01-05.pdf" in links


def test_cohort_page_draws_a_waterfall_of_best_change(view: PatientView) -> None:
    page = parsed(report_render.cohort_html([view]))
    assert table_cells(page, "patients")[0][1:] == ["P<1>&", "2", "-30", "PR"]
    waterfall = page.find(".//figure[@id='waterfall']")
    assert waterfall is not None and waterfall.find(SVG) is not None


def test_presented_form_references_both_renderings_by_url() -> None:
    pid = fhir_index.patient_resource(PATIENT)["id"]
    assert report_render.page_id(PATIENT) == pid
    forms = report_render.presented_form("http://host:8000/", PATIENT, FOLLOW_UP)
    assert forms == [
        {
            "contentType": "text/html",
            "url": f"http://host:8000/ui/patients/{pid}/reports/2024-03-08.html",
            "title": "Tumour response report 2024-03-08",
        },
        {
            "contentType": "application/pdf",
            "url": f"http://host:8000/ui/patients/{pid}/reports/2024-03-08.pdf",
            "title": "Tumour response report 2024-03-08",
        },
    ]


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils not installed")
def test_pdf_opens_and_shows_the_same_numbers_and_the_charts(
    view: PatientView, tmp_path: Path
) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(report_pdf.report_pdf(view, FOLLOW_UP))
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True, text=True
    ).stdout
    assert "Patient: P<1>& (urn:tumour-response:patient-id)" in text
    recist = next(line for line in text.splitlines() if line.startswith("RECIST 1.1  "))
    assert recist.split() == ["RECIST", "1.1", "PR", "PR", "-", "no", "PR", "70", "100"] + [
        "100",
        "-30",
        "-30",
    ]
    t1 = next(line for line in text.splitlines() if line.startswith("T1 "))
    assert t1.split() == ["T1", "target", "Liver", "60", "60", "42", "-30", "measured"]
    assert "Recommended criteria" in text
    subprocess.run(
        ["pdftoppm", "-f", "2", "-l", "2", "-r", "40", "-png", str(path), str(tmp_path / "p")],
        check=True,
    )
    (page,) = tmp_path.glob("p*.png")
    image = Image.open(io.BytesIO(page.read_bytes())).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 16) or []
    assert len(colours) > 50  # charts, not a blank page
    assert max(ImageStat.Stat(image).stddev) > 10
