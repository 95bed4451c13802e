"""Chun morphologic criteria for colorectal liver metastases on bevacizumab (Chun et al.,
JAMA 2009; criteria.md 7).

Each metastasis is graded by its morphology group (1 homogeneous and sharp, 2
mixed, 3 heterogeneous and ill-defined) and compared with baseline: 3 or 2 -> 1 is
an optimal response, 3 -> 2 incomplete, anything else none. The patient-level
response follows ``chun_patient_policy``: ``worst`` (every metastasis must respond)
or ``majority``. Chun grades response only and defines no progression: RECIST 1.1
always runs beside it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from service.domain.findings import chun_group
from service.domain.model import (
    Assessment,
    AssessmentParameters,
    History,
    LesionRole,
    Response,
    Timepoint,
    TimepointResponse,
    TrackedLesion,
)

CRITERION = "chun"
OPTIMAL, PARTIAL, ABSENT = (
    Response.OPTIMAL_MORPHOLOGIC,
    Response.PARTIAL_MORPHOLOGIC,
    Response.ABSENT_MORPHOLOGIC,
)
_RANK = {ABSENT: 0, PARTIAL: 1, OPTIMAL: 2}


def lesion_response(baseline_group: int, group: int) -> Response:
    """Chun 2009: group 3 or 2 -> 1 optimal; 3 -> 2 incomplete; otherwise none."""
    if group == 1 and baseline_group in (2, 3):
        return OPTIMAL
    if group == 2 and baseline_group == 3:
        return PARTIAL
    return ABSENT


def patient_response(responses: list[Response], policy: str) -> Response:
    """Patient level [I]: the worst metastasis, or the most frequent response (ties: worse)."""
    if policy == "majority":
        counts = Counter(responses)
        return max(counts, key=lambda response: (counts[response], -_RANK[response]))
    return min(responses, key=_RANK.__getitem__)


def assess(history: History, params: AssessmentParameters) -> Assessment:
    """Grade every follow-up against baseline, metastasis by metastasis."""
    baseline = history.timepoints[0]
    metastases = [
        lesion
        for lesion in history.lesions.values()
        if lesion.role in (LesionRole.TARGET, LesionRole.NON_TARGET)
        and chun_group(baseline.observations.get(lesion.key)) is not None
    ]
    warnings: list[str] = []
    if not metastases:
        warnings.append("no lesion has a Chun morphology group (or its features) at baseline")
    groups = {
        lesion.key: chun_group(baseline.observations.get(lesion.key)) for lesion in metastases
    }
    if any(group == 1 for group in groups.values()):
        warnings.append(
            "a metastasis is already group 1 at baseline: its morphologic response is "
            "uninformative (criteria.md 7)"
        )
    responses = [
        TimepointResponse(
            date=baseline.date,
            overall=None,
            explanation=(
                f"baseline morphology: {_groups_text(metastases, baseline)}"
                if metastases
                else "baseline: no morphology group",
            ),
        )
    ]
    best: Response | None = None
    for timepoint in history.timepoints[1:]:
        response = _evaluate(timepoint, metastases, groups, params)
        if response.overall is not None and response.overall in _RANK:
            best = max(best or response.overall, response.overall, key=_RANK.__getitem__)
        responses.append(_with_best(response, best))
    return Assessment(
        criterion=CRITERION,
        patient=history.patient,
        responses=tuple(responses),
        warnings=history.warnings + tuple(warnings),
    )


def _with_best(response: TimepointResponse, best: Response | None) -> TimepointResponse:
    return replace(response, best_overall=best or Response.NE)


def _groups_text(metastases: list[TrackedLesion], timepoint: Timepoint) -> str:
    return ", ".join(
        f"{lesion.identity} group {chun_group(timepoint.observations.get(lesion.key)) or 'n/a'}"
        for lesion in metastases
    )


def _evaluate(
    timepoint: Timepoint,
    metastases: list[TrackedLesion],
    baseline_groups: dict[str, int | None],
    params: AssessmentParameters,
) -> TimepointResponse:
    per_lesion: list[Response] = []
    details: list[str] = []
    for lesion in metastases:
        group = chun_group(timepoint.observations.get(lesion.key))
        before = baseline_groups[lesion.key]
        if group is None or before is None:
            details.append(f"{lesion.identity} not graded")
            continue
        response = lesion_response(before, group)
        per_lesion.append(response)
        details.append(f"{lesion.identity} group {before} -> {group}: {response.value.lower()}")
    if not per_lesion:
        overall = Response.NE
        why = "no metastasis graded at this timepoint"
    else:
        overall = patient_response(per_lesion, params.chun_patient_policy)
        why = f"patient level by the {params.chun_patient_policy} rule"
    return TimepointResponse(
        date=timepoint.date,
        overall=overall,
        explanation=(f"Chun {overall.value}", why, *details),
    )
