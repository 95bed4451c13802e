"""Assessments rendered for people: the timepoint report, the patient page and the cohort
page as server-side HTML (issue 9; contract section 2 ``/ui/...``, section 4
``presentedForm``).

The pages are built from a :class:`PatientView` (what :func:`service.services.patient_view`
assembles from the stored history, never from the request path of ``POST /assessments``).
Every text from the data is escaped; the output is well-formed XHTML-compatible HTML5 with
the charts of :mod:`.report_charts` inline as SVG. :func:`verdict_rows`,
:func:`lesion_rows` and :func:`report_warnings` are the tables shared with the PDF
(:mod:`.report_pdf`), so both show the same numbers.

Patients are named in URLs by their FHIR Patient id (:func:`page_id`): a UUID 5 of the
identifier, the id ``/fhir/Patient/{id}`` answers to, so no identifier value (PHI) appears
in a URL or an access log.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from service.adapters import fhir_writer, report_charts
from service.adapters.fhir_codes import CRITERION_METHOD
from service.domain.advisor import Recommendation
from service.domain.criteria import recist11
from service.domain.model import (
    Assessment,
    History,
    LesionObservation,
    LesionRole,
    PatientIdentity,
    Response,
    Timepoint,
    TimepointResponse,
    TrackedLesion,
)
from service.domain.sums import display, lesion_size, percent_change

Resource = dict[str, object]
HTML = "text/html"
PDF = "application/pdf"
_EXTENSIONS = {HTML: "html", PDF: "pdf"}
_HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class PatientView:
    """A patient's stored history and what the criteria make of it, for rendering."""

    history: History
    assessments: tuple[Assessment, ...]  # RECIST 1.1 first
    advice: tuple[Recommendation, ...]
    commentary: Mapping[date, tuple[str, ...]]  # per timepoint: findings, recommendation
    studies: Mapping[date, tuple[str, ...]]  # Study Instance UIDs per timepoint

    @property
    def page_id(self) -> str:
        return page_id(self.history.patient)

    @property
    def recist(self) -> Assessment:
        return next(a for a in self.assessments if a.criterion == recist11.CRITERION)

    def timepoint(self, day: date) -> Timepoint:
        """The timepoint imaged on *day*; KeyError when there is none."""
        return self.history.timepoint(day)


@dataclass(frozen=True, slots=True)
class VerdictRow:
    """One criterion's verdict at one timepoint, with the numbers that decided it."""

    criterion: str
    overall: str
    target: str
    non_target: str
    new_lesions: str
    best_overall: str
    sum_mm: str
    baseline_mm: str
    nadir_mm: str
    from_baseline: str
    from_nadir: str
    explanation: str


@dataclass(frozen=True, slots=True)
class LesionRow:
    """One lesion at one timepoint: sizes (RECIST contribution, mm) and state."""

    lesion: str
    role: str
    site: str
    baseline_mm: str
    nadir_mm: str
    current_mm: str
    change: str
    state: str


LESION_HEADERS: tuple[str, ...] = (
    *("Lesion", "Role", "Site", "Baseline (mm)", "Nadir (mm)", "Current (mm)"),
    *("Change (%)", "State"),
)
VERDICT_HEADERS: tuple[str, ...] = (
    *("Criterion", "Overall", "Target", "Non-target", "New lesions", "Best overall"),
    *("Sum (mm)", "Baseline (mm)", "Nadir (mm)", "From baseline (%)", "From nadir (%)"),
)


# -- URLs -----------------------------------------------------------------------------------


def page_id(patient: PatientIdentity) -> str:
    """The patient's id in ``/ui/patients/{id}``: the id of its FHIR Patient resource."""
    return fhir_writer.patient_id(patient)


def patient_path(patient: PatientIdentity) -> str:
    return f"/ui/patients/{page_id(patient)}"


def report_path(patient: PatientIdentity, day: date, media_type: str = HTML) -> str:
    """The stable path of the report of *patient* on *day* as HTML or PDF."""
    return f"{patient_path(patient)}/reports/{day.isoformat()}.{_EXTENSIONS[media_type]}"


def presented_form(base_url: str, patient: PatientIdentity, day: date) -> list[Resource]:
    """DiagnosticReport.presentedForm: Attachments referencing the HTML and PDF renderings
    by ``url`` (contract section 4); *base_url* is the service root, e.g.
    ``http://host:8000``."""
    root = base_url.rstrip("/")
    title = f"Tumour response report {day.isoformat()}"
    forms: list[Resource] = []
    for media_type in (HTML, PDF):
        url = root + report_path(patient, day, media_type)
        forms.append({"contentType": media_type, "url": url, "title": title})
    return forms


# -- the numbers ----------------------------------------------------------------------------


def verdict_rows(view: PatientView, day: date) -> list[VerdictRow]:
    """One row per criterion applied, RECIST 1.1 first."""
    return [_verdict_row(a.criterion, a.at(day)) for a in view.assessments]


def _verdict_row(criterion: str, response: TimepointResponse) -> VerdictRow:
    sums = response.sums
    return VerdictRow(
        criterion=CRITERION_METHOD[criterion][1],
        overall="baseline" if response.overall is None else response.overall.value,
        target=_value(response.target),
        non_target=_value(response.non_target),
        new_lesions="yes" if response.new_lesions else "no",
        best_overall=_value(response.best_overall),
        sum_mm=display(None if sums is None else sums.current_mm),
        baseline_mm=display(None if sums is None else sums.baseline_mm),
        nadir_mm=display(None if sums is None else sums.nadir_mm),
        from_baseline=display(None if sums is None else sums.pct_from_baseline),
        from_nadir=display(None if sums is None else sums.pct_from_nadir),
        explanation="; ".join(response.explanation),
    )


def _value(response: Response | None) -> str:
    return "-" if response is None else response.value


def lesion_rows(view: PatientView, day: date) -> list[LesionRow]:
    """Every lesion seen up to *day*: baseline, nadir (smallest before *day*), current size
    and change from its first size, and the reader's state."""
    history = view.history
    earlier = [tp for tp in history.timepoints if tp.date < day]
    current = view.timepoint(day)
    rows = []
    for lesion in history.lesions.values():
        if lesion.first_seen > day:
            continue
        sizes = _sizes(lesion, [*earlier, current])
        first = next((size for _, size in sizes if size is not None), None)
        before = [size for when, size in sizes if when < day and size is not None]
        now = sizes[-1][1]
        observation = current.observations.get(lesion.key)
        rows.append(
            LesionRow(
                lesion=str(lesion.identity),
                role=lesion.role.value,
                site=lesion.site.meaning or lesion.site.value if lesion.site else "-",
                baseline_mm=display(first),
                nadir_mm=display(min(before)) if before else "-",
                current_mm=display(now),
                change=display(_change(now, first)),
                state=_state(observation, now),
            )
        )
    return rows


def _sizes(
    lesion: TrackedLesion, timepoints: Iterable[Timepoint]
) -> list[tuple[date, Decimal | None]]:
    return [(tp.date, lesion_size(lesion, tp.observations.get(lesion.key))) for tp in timepoints]


def _change(now: Decimal | None, first: Decimal | None) -> Decimal | None:
    return None if now is None or first is None else percent_change(now, first)


def _state(observation: LesionObservation | None, size: Decimal | None) -> str:
    if observation is None:
        return "not reported"
    if observation.state is not None:
        return observation.state.value
    return "measured" if size is not None else "present"


def report_warnings(view: PatientView, day: date) -> list[str]:
    """The history's warnings, then each criterion's, once each."""
    found = list(view.history.warnings)
    for assessment in view.assessments:
        found.extend(assessment.warnings)
        found.extend(assessment.at(day).warnings)
    return list(dict.fromkeys(found))


def sum_series(view: PatientView, until: date) -> report_charts.SumSeries | None:
    """The RECIST 1.1 sums up to *until*; None when the baseline has no sum."""
    responses = [r for r in view.recist.responses if r.date <= until and r.sums is not None]
    if not responses:
        return None
    last = responses[-1].sums
    assert last is not None  # filtered above
    reference = last.nadir_mm if last.nadir_mm is not None else last.baseline_mm
    pd_at = max(
        reference * (_HUNDRED + recist11.PD_INCREASE_PERCENT) / _HUNDRED,
        reference + recist11.PD_MIN_ABSOLUTE_MM,
    )
    return report_charts.SumSeries(
        points=[
            (r.date, float(r.sums.current_mm))
            for r in responses
            if r.sums is not None and r.sums.current_mm is not None
        ],
        baseline_mm=float(last.baseline_mm),
        nadir_mm=None if last.nadir_mm is None else float(last.nadir_mm),
        pd_threshold_mm=float(pd_at),
        pr_threshold_mm=float(
            last.baseline_mm * (_HUNDRED - recist11.PR_DECREASE_PERCENT) / _HUNDRED
        ),
    )


def spider_series(view: PatientView, until: date) -> dict[str, list[tuple[date, float]]]:
    """Each target lesion's percent change from its baseline size, up to *until*."""
    history = view.history
    found: dict[str, list[tuple[date, float]]] = {}
    for lesion in history.with_role(LesionRole.TARGET):
        sizes = _sizes(lesion, (tp for tp in history.timepoints if tp.date <= until))
        known = [(when, size) for when, size in sizes if size is not None]
        if not known or known[0][1] == 0:
            continue
        first = known[0][1]
        found[str(lesion.identity)] = [
            (when, float(percent_change(size, first) or 0)) for when, size in known
        ]
    return found


def best_change(view: PatientView) -> tuple[Decimal, str] | None:
    """The smallest RECIST 1.1 percent change from baseline on study and the best overall
    response so far; None before the first follow-up."""
    on_study = [r for r in view.recist.responses if not r.is_baseline]
    changes = [
        r.sums.pct_from_baseline
        for r in on_study
        if r.sums is not None and r.sums.pct_from_baseline is not None
    ]
    if not changes:
        return None
    return min(changes), _value(on_study[-1].best_overall)


# -- HTML -----------------------------------------------------------------------------------


def report_html(view: PatientView, day: date) -> str:
    """The report of one timepoint: header, verdicts, lesions, findings, warnings, charts."""
    patient = view.history.patient
    timepoint = view.timepoint(day)
    kind = "Baseline" if day == view.history.timepoints[0].date else "Follow-up"
    status = "preliminary" if timepoint.preliminary else "final"
    header = _definitions(
        [
            ("Patient", f"{patient.value} ({patient.system})"),
            ("Timepoint", f"{day.isoformat()} ({kind}, {status})"),
            ("Studies", ", ".join(view.studies.get(day, ())) or "-"),
            ("Criteria", ", ".join(CRITERION_METHOD[a.criterion][1] for a in view.assessments)),
        ]
    )
    rows = verdict_rows(view, day)
    verdicts = _table(
        VERDICT_HEADERS + ("What decided it",),
        [[*verdict_cells(row), row.explanation] for row in rows],
        "verdicts",
    )
    lesions = _table(LESION_HEADERS, [lesion_cells(row) for row in lesion_rows(view, day)])
    links = (
        f'<p><a href="{_e(report_path(patient, day, PDF))}">PDF</a> · '
        f'<a href="{_e(patient_path(patient))}">patient page</a></p>'
    )
    body = (
        f"<h1>Tumour response report</h1>{header}{links}"
        f"<h2>Verdicts</h2>{verdicts}"
        f"<h2>Lesions</h2>{lesions}"
        f"<h2>Findings and recommendation</h2>{_list(view.commentary.get(day, ()))}"
        f"<h2>Warnings</h2>{_list(report_warnings(view, day)) or '<p>None.</p>'}"
        f"<h2>Charts</h2>{_charts(view, day)}"
    )
    return _page(f"Tumour response report {day.isoformat()}", body)


def patient_html(view: PatientView) -> str:
    """The patient page: the timeline of timepoints with links to their reports, charts."""
    patient = view.history.patient
    names = [CRITERION_METHOD[a.criterion][1] for a in view.assessments]
    rows = []
    for timepoint in view.history.timepoints:
        day = timepoint.date
        recist = view.recist.at(day)
        sums = recist.sums
        rows.append(
            [
                day.isoformat(),
                "preliminary" if timepoint.preliminary else "final",
                *(_overall(a.at(day)) for a in view.assessments),
                _value(recist.best_overall),
                display(None if sums is None else sums.current_mm),
                display(None if sums is None else sums.pct_from_baseline),
                _Html(
                    f'<a href="{_e(report_path(patient, day))}">HTML</a> · '
                    f'<a href="{_e(report_path(patient, day, PDF))}">PDF</a>'
                ),
            ]
        )
    headers = ("Date", "Status", *names, "Best overall (RECIST 1.1)", "Sum (mm)")
    timeline = _table((*headers, "From baseline (%)", "Report"), rows, "timeline")
    last = view.history.timepoints[-1].date
    advice = _list(f"{r.criterion}: {r.reason}" for r in view.advice)
    body = (
        f"<h1>Patient {_e(patient.value)}</h1>"
        f"{_definitions([('Identifier system', patient.system)])}"
        f'<p><a href="/ui/cohort">cohort</a></p>'
        f"<h2>Timeline</h2>{timeline}<h2>Charts</h2>{_charts(view, last)}"
        f"<h2>Recommended criteria</h2>{advice}"
    )
    return _page(f"Patient {patient.value}", body)


def cohort_html(views: Sequence[PatientView]) -> str:
    """The cohort page: a waterfall plot of each patient's best percent change."""
    bars, rows = [], []
    for view in views:
        best = best_change(view)
        short = view.page_id[:8]
        link = _Html(f'<a href="{_e(patient_path(view.history.patient))}">{_e(short)}</a>')
        change, response = ("n/a", "-") if best is None else (display(best[0]), best[1])
        count = str(len(view.history.timepoints))
        rows.append([link, view.history.patient.value, count, change, response])
        if best is not None:
            bars.append((short, float(best[0]), best[1]))
    chart = (
        _figure(report_charts.waterfall_chart(bars, "svg"), "waterfall")
        if bars
        else "<p>No patient has a follow-up yet.</p>"
    )
    table = _table(
        ("Page", "Patient", "Timepoints", "Best change (%)", "Best overall (RECIST 1.1)"),
        rows,
        "patients",
    )
    return _page("Cohort", f"<h1>Cohort</h1><h2>Waterfall</h2>{chart}<h2>Patients</h2>{table}")


def not_found_html(message: str) -> str:
    return _page("Not found", f"<h1>Not found</h1><p>{_e(message)}</p>")


def _charts(view: PatientView, until: date) -> str:
    sums = sum_series(view, until)
    parts = [
        _figure(report_charts.sum_chart(sums, "svg"), "sum-chart")
        if sums is not None
        else "<p>No sum of diameters at baseline.</p>"
    ]
    spider = spider_series(view, until)
    if spider:
        parts.append(_figure(report_charts.spider_chart(spider, "svg"), "spider-chart"))
    return "".join(parts)


def _overall(response: TimepointResponse) -> str:
    return "baseline" if response.overall is None else response.overall.value


def verdict_cells(row: VerdictRow) -> list[str]:
    return [
        row.criterion,
        row.overall,
        row.target,
        row.non_target,
        row.new_lesions,
        row.best_overall,
        row.sum_mm,
        row.baseline_mm,
        row.nadir_mm,
        row.from_baseline,
        row.from_nadir,
    ]


def lesion_cells(row: LesionRow) -> list[str]:
    return [
        row.lesion,
        row.role,
        row.site,
        row.baseline_mm,
        row.nadir_mm,
        row.current_mm,
        row.change,
        row.state,
    ]


class _Html(str):
    """Markup built here from escaped parts; not escaped again."""


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _cell(value: str) -> str:
    return value if isinstance(value, _Html) else _e(value)


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], css_id: str = "") -> str:
    ident = f' id="{css_id}"' if css_id else ""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _definitions(pairs: Iterable[tuple[str, str]]) -> str:
    items = "".join(f"<dt>{_e(name)}</dt><dd>{_e(value)}</dd>" for name, value in pairs)
    return f"<dl>{items}</dl>"


def _list(lines: Iterable[str]) -> str:
    items = "".join(f"<li>{_e(line)}</li>" for line in lines)
    return f"<ul>{items}</ul>" if items else ""


def _figure(svg: bytes, css_id: str) -> str:
    """An SVG document as inline markup: the XML declaration and DOCTYPE dropped."""
    text = svg.decode()
    return f'<figure id="{css_id}">{text[text.index("<svg") :]}</figure>'


_STYLE = (
    "body{font-family:'DejaVu Sans',Arial,sans-serif;margin:2em;color:#222;max-width:1200px}"
    "table{border-collapse:collapse;margin:0.5em 0 1.5em}"
    "th,td{border:1px solid #bbb;padding:4px 8px;text-align:left;font-size:0.9em}"
    "th{background:#eef2f6}dl{display:grid;grid-template-columns:max-content auto;gap:2px 1em}"
    "dt{font-weight:bold}dd{margin:0}figure{margin:1em 0}figure svg{max-width:100%;height:auto}"
)


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"/>'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>\n"
    )
