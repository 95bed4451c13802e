"""Pages for people (contract section 2 ``GET /ui/...``; issue 9).

* ``GET /ui/patients/{patient_id}``: the patient's timeline, charts and report links;
* ``GET /ui/patients/{patient_id}/reports/{date}.html`` and ``.pdf``: the timepoint report
  at its stable URL, the one DiagnosticReport.presentedForm references (contract 4);
* ``GET /ui/cohort``: the waterfall plot of every patient's best percent change.

``patient_id`` is the patient's FHIR Patient id (:func:`report_render.page_id`), never
an identifier value. Everything is rendered on demand from the stored history with the
criteria chosen as on ``POST /assessments`` (the same query parameters). Unknown
patients and dates answer 404 with an HTML page; the other routes keep OperationOutcome.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from service import services
from service.adapters import report_render
from service.adapters.db import open_store
from service.adapters.report_render import PatientView
from service.domain.errors import NotFound
from service.entrypoints.api.deps import EngineDep, TenantDep
from service.entrypoints.api.params import AssessmentQuery, AssessmentQueryDep

router = APIRouter(prefix="/ui", tags=["ui"])

_HTML_ANSWER: dict[int | str, dict[str, object]] = {
    200: {"content": {report_render.HTML: {"schema": {"type": "string"}}}},
    404: {
        "description": "no such patient or timepoint (an HTML page)",
        "content": {report_render.HTML: {"schema": {"type": "string"}}},
    },
}
_PDF_ANSWER: dict[int | str, dict[str, object]] = {
    200: {"content": {report_render.PDF: {"schema": {"type": "string", "format": "binary"}}}},
    404: _HTML_ANSWER[404],
}


class _PageNotFound(Exception):
    """Answered with an HTML 404 page by :func:`_rendered`."""


def _view(engine: EngineDep, patient_id: str, query: AssessmentQuery, tenant: str) -> PatientView:
    with open_store(engine) as store:
        try:
            patient = services.find_patient(store, patient_id, tenant=tenant)
        except NotFound as exc:
            raise _PageNotFound("no such patient") from exc
        return services.patient_view(
            store, patient, query.criteria, query.params, query.setting, tenant=tenant
        )


def _rendered(render: Callable[[], Response]) -> Response:
    try:
        return render()
    except _PageNotFound as exc:
        return HTMLResponse(report_render.not_found_html(str(exc)), status_code=404)


def _timepoint(view: PatientView, day: date) -> date:
    try:
        view.timepoint(day)
    except KeyError as exc:
        raise _PageNotFound(f"no timepoint on {day.isoformat()}") from exc
    return day


@router.get("/patients/{patient_id}", response_class=HTMLResponse, responses=_HTML_ANSWER)
async def patient_page(
    patient_id: str, engine: EngineDep, query: AssessmentQueryDep, tenant: TenantDep
) -> Response:
    """The patient's timeline, charts and links to each timepoint's report."""
    return _rendered(
        lambda: HTMLResponse(report_render.patient_html(_view(engine, patient_id, query, tenant)))
    )


@router.get(
    "/patients/{patient_id}/reports/{day}.html",
    response_class=HTMLResponse,
    responses=_HTML_ANSWER,
)
async def report_page(
    patient_id: str, day: date, engine: EngineDep, query: AssessmentQueryDep, tenant: TenantDep
) -> Response:
    """The report of one timepoint as HTML (its stable URL)."""

    def render() -> Response:
        view = _view(engine, patient_id, query, tenant)
        return HTMLResponse(report_render.report_html(view, _timepoint(view, day)))

    return _rendered(render)


@router.get(
    "/patients/{patient_id}/reports/{day}.pdf", response_class=Response, responses=_PDF_ANSWER
)
async def report_document(
    patient_id: str, day: date, engine: EngineDep, query: AssessmentQueryDep, tenant: TenantDep
) -> Response:
    """The report of one timepoint as PDF (its stable URL)."""

    def render() -> Response:
        # fpdf (~25 MB, ~0.3 s) is imported at the first PDF, not with the service
        # (issue 7, worker RSS).
        from service.adapters import report_pdf

        view = _view(engine, patient_id, query, tenant)
        pdf = report_pdf.report_pdf(view, _timepoint(view, day))
        return Response(pdf, media_type=report_render.PDF)

    return _rendered(render)


@router.get("/cohort", response_class=HTMLResponse, responses=_HTML_ANSWER)
async def cohort_page(engine: EngineDep, query: AssessmentQueryDep, tenant: TenantDep) -> Response:
    """Every patient of the caller's tenant: best percent change as a waterfall plot, with
    links to their pages."""
    with open_store(engine) as store:
        views = services.cohort_view(
            store, query.criteria, query.params, query.setting, tenant=tenant
        )
    return HTMLResponse(report_render.cohort_html(views))
