"""The timepoint report as PDF (issue 9; contract section 4 ``presentedForm``).

The same sections and numbers as the HTML report (:func:`report_render.report_html`,
from the shared :func:`report_render.verdict_rows` / :func:`report_render.lesion_rows`),
laid out with fpdf2 (pure Python, no system binaries) and the charts as PNG. Text is set
in DejaVu Sans, the font matplotlib ships, embedded as a TrueType subset so any Unicode
text prints and PDF readers can extract it.
"""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path

import matplotlib as mpl
from fpdf import FPDF
from fpdf.fonts import FontFace

from service.adapters import report_charts, report_render
from service.adapters.report_render import PatientView

_FONTS = Path(mpl.get_data_path()) / "fonts" / "ttf"
_FAMILY = "DejaVu"
_HEADING = FontFace(emphasis="BOLD", fill_color=(238, 242, 246))
_CHART_WIDTH_MM = 133  # two charts across A4 landscape


def report_pdf(view: PatientView, day: date) -> bytes:
    """The report of *view*'s timepoint on *day* as a PDF document (A4 landscape)."""
    pdf = FPDF(orientation="landscape", format="A4")
    pdf.set_title(f"Tumour response report {day.isoformat()}")
    pdf.set_creator("tumour-response")
    pdf.add_font(_FAMILY, "", str(_FONTS / "DejaVuSans.ttf"))
    pdf.add_font(_FAMILY, "B", str(_FONTS / "DejaVuSans-Bold.ttf"))
    pdf.set_auto_page_break(auto=True, margin=12)
    pdf.add_page()
    patient = view.history.patient
    timepoint = view.timepoint(day)
    _heading(pdf, "Tumour response report", 16)
    _text(pdf, f"Patient: {patient.value} ({patient.system})")
    kind = "Baseline" if day == view.history.timepoints[0].date else "Follow-up"
    status = "preliminary" if timepoint.preliminary else "final"
    _text(pdf, f"Timepoint: {day.isoformat()} ({kind}, {status})")
    _text(pdf, f"Studies: {', '.join(view.studies.get(day, ())) or '-'}")
    _heading(pdf, "Verdicts")
    rows = report_render.verdict_rows(view, day)
    _table(
        pdf,
        report_render.VERDICT_HEADERS,
        [report_render.verdict_cells(row) for row in rows],
    )
    for row in rows:
        _text(pdf, f"{row.criterion}: {row.explanation}")
    _heading(pdf, "Lesions")
    _table(
        pdf,
        report_render.LESION_HEADERS,
        [report_render.lesion_cells(row) for row in report_render.lesion_rows(view, day)],
    )
    _heading(pdf, "Findings and recommendation")
    for line in view.commentary.get(day, ()):
        _text(pdf, line)
    _heading(pdf, "Warnings")
    for line in report_render.report_warnings(view, day) or ["None."]:
        _text(pdf, line)
    _charts(pdf, view, day)
    return bytes(pdf.output())


def _heading(pdf: FPDF, text: str, size: int = 12) -> None:
    pdf.set_font(_FAMILY, "B", size)
    pdf.ln(2)
    pdf.cell(text=text, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1)


def _text(pdf: FPDF, text: str) -> None:
    pdf.set_font(_FAMILY, "", 9)
    pdf.multi_cell(0, 5, text, new_x="LMARGIN", new_y="NEXT")


def _table(pdf: FPDF, headers: tuple[str, ...], rows: list[list[str]]) -> None:
    pdf.set_font(_FAMILY, "", 8)
    with pdf.table(headings_style=_HEADING, line_height=5) as table:
        table.row(headers)
        for row in rows:
            table.row(row)


def _charts(pdf: FPDF, view: PatientView, day: date) -> None:
    """The sum-of-diameters chart and the spider plot side by side on a page of their own."""
    charts = []
    sums = report_render.sum_series(view, day)
    if sums is not None:
        charts.append(report_charts.sum_chart(sums, "png"))
    spider = report_render.spider_series(view, day)
    if spider:
        charts.append(report_charts.spider_chart(spider, "png"))
    if not charts:
        return
    pdf.add_page()
    _heading(pdf, "Charts")
    top = pdf.get_y()
    for index, png in enumerate(charts):
        x = pdf.l_margin + index * (_CHART_WIDTH_MM + 5)
        pdf.image(io.BytesIO(png), x=x, y=top, w=_CHART_WIDTH_MM)
