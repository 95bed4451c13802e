"""iRECIST for immunotherapy (Seymour et al., Lancet Oncol 2017; criteria.md 4).

RECIST 1.1 progression becomes iUPD (unconfirmed) and needs confirmation at a later
timepoint to become iCPD (Seymour Table 2): by the category that triggered it
(target sum +5 mm over the sum at iUPD, additive; any further non-target increase;
new-lesion growth or number), or by RECIST 1.1 progression of a category that did
not. When every triggering category has returned to non-progression the bar is
reset and the timepoint is iCR/iPR/iSD/NON-iCR/NON-iUPD. The component responses are
RECIST 1.1's (composition, not subclassing).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from service.domain.criteria import recist11
from service.domain.history import (
    MAX_TARGETS,
    MAX_TARGETS_PER_ORGAN,
    MIN_MEASURABLE_NODE_MM,
    NODAL_ORGAN,
    minimum_measurable_mm,
)
from service.domain.model import (
    Assessment,
    AssessmentParameters,
    History,
    LesionRole,
    LesionState,
    Response,
    SumOfDiameters,
    Timepoint,
    TimepointResponse,
    TrackedLesion,
)
from service.domain.sums import display, lesion_size, total

CRITERION = "irecist"
CONFIRM_FURTHER_MM = Decimal(5)  # target or NLT sum, over the sum at iUPD (Table 2)
CONFIRM_EARLIEST_DAYS = 28  # confirmation at the next assessment 4-8 weeks later

_FROM_RECIST = {
    Response.CR: Response.ICR,
    Response.PR: Response.IPR,
    Response.SD: Response.ISD,
    Response.NON_CR_NON_PD: Response.NON_ICR_NON_IUPD,
    Response.NE: Response.NE,
}
_TO_RECIST = {
    Response.ICR: Response.CR,
    Response.IPR: Response.PR,
    Response.ISD: Response.SD,
    Response.NON_ICR_NON_IUPD: Response.NON_CR_NON_PD,
    Response.IUPD: Response.PD,
    Response.ICPD: Response.PD,
    Response.NE: Response.NE,
}


class Trigger(enum.Enum):
    """The category whose RECIST 1.1 progression made the iUPD."""

    TARGET = "target"
    NON_TARGET = "non-target"
    NEW = "new lesions"


@dataclass(frozen=True, slots=True)
class _Pending:
    since: date
    triggers: frozenset[Trigger]
    target_sum: Decimal
    nlt_sum: Decimal
    new_count: int


@dataclass(frozen=True, slots=True)
class _State:
    progress: recist11.Progress
    pending: _Pending | None = None
    confirmed: date | None = None
    accepted_new: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class _Seen:
    """One timepoint's RECIST 1.1 components, as iRECIST reads them."""

    target: Response | None
    target_sum: Decimal  # of the assessed targets
    sums: SumOfDiameters | None  # None without targets
    non_target: Response | None
    non_target_increased: bool
    new: tuple[str, ...]  # unequivocal new lesions
    fresh: tuple[str, ...]  # ... not accepted at an earlier reset
    nlt_sum: Decimal
    nlnt_increased: bool


def assess(history: History, params: AssessmentParameters) -> Assessment:
    """Apply iRECIST to every timepoint of *history*."""
    disease, warnings = recist11.classify(history, recist11.RULES)
    nlt = new_lesion_targets(disease.new, history)
    baseline = history.timepoints[0]
    baseline_sizes = recist11.sizes(disease.targets, baseline, recist11.RULES)
    baseline_sum = total(s for s in baseline_sizes.values() if s is not None)
    responses = [recist11.baseline_response(baseline, disease, baseline_sum, recist11.RULES)]
    state = _State(progress=recist11.Progress(nadir=baseline_sum))
    for timepoint in history.timepoints[1:]:
        response, state = _evaluate(timepoint, disease, nlt, baseline_sum, state, params)
        responses.append(response)
    return Assessment(
        criterion=CRITERION,
        patient=history.patient,
        responses=recist11.with_best_overall(responses, params, best_overall_responses),
        warnings=history.warnings + tuple(warnings),
    )


def new_lesion_targets(new: Sequence[TrackedLesion], history: History) -> frozenset[str]:
    """New lesions measured as NLT: declared, else measurable at first sight within
    5 in all and 2 per organ (criteria.md 4.1 [M]); the others are NLNT."""
    chosen: set[str] = set()
    per_organ: dict[str, int] = {}
    by_date = {timepoint.date: timepoint for timepoint in history.timepoints}
    for lesion in sorted(new, key=lambda lesion: (lesion.first_seen, lesion.key)):
        if lesion.role is LesionRole.NEW_NON_TARGET:
            continue
        observation = by_date[lesion.first_seen].observations.get(lesion.key)
        size = lesion_size(lesion, observation)
        minimum = (
            MIN_MEASURABLE_NODE_MM
            if lesion.is_nodal
            else minimum_measurable_mm(
                None if observation is None else observation.slice_thickness_mm
            )
        )
        declared = lesion.role is LesionRole.NEW_TARGET
        organ = NODAL_ORGAN if lesion.is_nodal else str(lesion.site or lesion.key)
        if not declared and (size is None or size < minimum):
            continue
        if len(chosen) < MAX_TARGETS and per_organ.get(organ, 0) < MAX_TARGETS_PER_ORGAN:
            chosen.add(lesion.key)
            per_organ[organ] = per_organ.get(organ, 0) + 1
    return frozenset(chosen)


def _see(
    timepoint: Timepoint,
    disease: recist11.Disease,
    nlt: frozenset[str],
    baseline_sum: Decimal,
    state: _State,
    params: AssessmentParameters,
) -> tuple[_Seen, str]:
    now = recist11.sizes(disease.targets, timepoint, recist11.RULES)
    target, why = (None, "no target lesions")
    if disease.targets:
        target, why = recist11.target_response(
            disease.targets, now, baseline_sum, state.progress, params
        )
    new = recist11.new_lesions(disease.new, timepoint).unequivocal
    observations = timepoint.observations
    seen = _Seen(
        target=target,
        target_sum=total(s for s in now.values() if s is not None),
        sums=recist11.sum_of_diameters(now, baseline_sum, state.progress.nadir)
        if disease.targets
        else None,
        non_target=recist11.non_target_response(disease.non_targets, timepoint),
        non_target_increased=any(
            _increased(observations.get(lesion.key)) for lesion in disease.non_targets
        ),
        new=new,
        fresh=tuple(key for key in new if key not in state.accepted_new),
        nlt_sum=total(
            size
            for lesion in disease.new
            if lesion.key in nlt
            and (size := lesion_size(lesion, observations.get(lesion.key))) is not None
        ),
        nlnt_increased=any(
            _increased(observations.get(lesion.key))
            for lesion in disease.new
            if lesion.key not in nlt
        ),
    )
    return seen, why


def _increased(observation: object) -> bool:
    return getattr(observation, "state", None) is LesionState.INCREASED


def _evaluate(
    timepoint: Timepoint,
    disease: recist11.Disease,
    nlt: frozenset[str],
    baseline_sum: Decimal,
    state: _State,
    params: AssessmentParameters,
) -> tuple[TimepointResponse, _State]:
    seen, target_why = _see(timepoint, disease, nlt, baseline_sum, state, params)
    sums = seen.sums
    warnings: list[str] = []
    if state.confirmed is not None:
        overall, why = Response.ICPD, [f"progression confirmed (iCPD) on {state.confirmed}"]
        pending, accepted, confirmed = None, state.accepted_new, state.confirmed
    elif state.pending is None:
        overall, why, pending = _unconfirmed_or_response(timepoint.date, seen, state)
        accepted, confirmed = state.accepted_new, None
    else:
        warnings.extend(_window_warnings(state.pending, timepoint.date, params))
        overall, why, pending, accepted = _after_iupd(seen, state.pending, state.accepted_new)
        confirmed = timepoint.date if overall is Response.ICPD else None
    response = TimepointResponse(
        date=timepoint.date,
        overall=overall,
        target=None if seen.target is None else _FROM_RECIST.get(seen.target, Response.IUPD),
        non_target=None
        if seen.non_target is None
        else _FROM_RECIST.get(seen.non_target, Response.IUPD),
        new_lesions=bool(seen.fresh),
        best_overall=None,
        sums=sums,
        explanation=(f"iRECIST {overall.value}", *why, target_why),
        warnings=tuple(warnings),
    )
    progress = recist11.advance(
        state.progress, timepoint.date, seen.target, _TO_RECIST[overall], sums, params
    )
    return response, _State(progress, pending, confirmed, accepted)


def _recist_triggers(seen: _Seen) -> frozenset[Trigger]:
    found = set()
    if seen.target is Response.PD:
        found.add(Trigger.TARGET)
    if seen.non_target is Response.PD:
        found.add(Trigger.NON_TARGET)
    if seen.fresh:
        found.add(Trigger.NEW)
    return frozenset(found)


def _unconfirmed_or_response(
    day: date, seen: _Seen, state: _State
) -> tuple[Response, list[str], _Pending | None]:
    triggers = _recist_triggers(seen)
    if triggers:
        pending = _Pending(day, triggers, seen.target_sum, seen.nlt_sum, len(seen.new))
        names = ", ".join(sorted(t.value for t in triggers))
        return Response.IUPD, [f"RECIST 1.1 progression by {names}: unconfirmed (iUPD)"], pending
    return _reset_response(seen), ["no RECIST 1.1 progression"], None


def _reset_response(seen: _Seen) -> Response:
    """The i-category of the RECIST components; iCR needs new lesions gone too."""
    recist = recist11.overall_response(seen.target, seen.non_target, False)
    response = _FROM_RECIST[recist]
    if response is Response.ICR and seen.new:
        return Response.IPR
    return response


def _after_iupd(
    seen: _Seen, pending: _Pending, accepted: frozenset[str]
) -> tuple[Response, list[str], _Pending | None, frozenset[str]]:
    """Seymour Table 2: confirm, reset, or stay iUPD."""
    confirmation = _confirmation(seen, pending)
    if confirmation:
        return Response.ICPD, [f"iUPD of {pending.since} confirmed: {confirmation}"], None, accepted
    if seen.target is Response.NE:
        return Response.NE, ["a target was not assessed: the iUPD stays pending"], pending, accepted
    if _returned_to_non_progression(seen, pending):
        response = _reset_response(seen)
        return (
            response,
            [
                f"every category that made the iUPD of {pending.since} is back to "
                "non-progression: the bar is reset"
            ],
            None,
            accepted | frozenset(seen.new),
        )
    return (
        Response.IUPD,
        [f"iUPD of {pending.since} neither confirmed nor resolved"],
        pending,
        accepted,
    )


def _confirmation(seen: _Seen, pending: _Pending) -> str:
    """Why this timepoint confirms the pending iUPD, or '' (Seymour Table 2)."""
    triggers = pending.triggers
    if Trigger.TARGET in triggers and seen.target_sum - pending.target_sum >= CONFIRM_FURTHER_MM:
        return (
            f"target sum {display(seen.target_sum)} mm is >= {CONFIRM_FURTHER_MM} mm over "
            f"{display(pending.target_sum)} mm at iUPD"
        )
    if Trigger.NON_TARGET in triggers and seen.non_target_increased:
        return "a further increase of non-target disease"
    if Trigger.NEW in triggers:
        if seen.nlt_sum - pending.nlt_sum >= CONFIRM_FURTHER_MM:
            return (
                f"new-lesion target sum {display(seen.nlt_sum)} mm is >= "
                f"{CONFIRM_FURTHER_MM} mm over {display(pending.nlt_sum)} mm at iUPD"
            )
        if seen.nlnt_increased:
            return "a new non-target lesion increased"
        if len(seen.new) > pending.new_count:
            return f"more new lesions ({len(seen.new)} vs {pending.new_count} at iUPD)"
    if Trigger.TARGET not in triggers and seen.target is Response.PD:
        return "target lesions now meet RECIST 1.1 progression"
    if Trigger.NON_TARGET not in triggers and seen.non_target is Response.PD:
        return "non-target lesions now progress unequivocally"
    if Trigger.NEW not in triggers and seen.fresh:
        return "new lesions appeared"
    return ""


def _returned_to_non_progression(seen: _Seen, pending: _Pending) -> bool:
    """Every triggering category is back below progression (criteria.md 4.2).

    A new-lesion trigger also resets when the baseline target disease shrank since
    the iUPD though the new lesion persists (RWG FAQ scenario B, [I]).
    """
    checks = {
        Trigger.TARGET: seen.target not in (Response.PD, Response.NE),
        Trigger.NON_TARGET: seen.non_target is not Response.PD,
        Trigger.NEW: not seen.new or seen.target_sum < pending.target_sum,
    }
    return all(checks[trigger] for trigger in pending.triggers)


def _window_warnings(pending: _Pending, day: date, params: AssessmentParameters) -> list[str]:
    days = (day - pending.since).days
    if days > params.icpd_window_days:
        return [
            f"this scan is {days} days after the iUPD of {pending.since}: later than the "
            f"{params.icpd_window_days}-day confirmation window"
        ]
    if days < CONFIRM_EARLIEST_DAYS:
        return [
            f"this scan is {days} days after the iUPD of {pending.since}: earlier than the "
            f"{CONFIRM_EARLIEST_DAYS} days iRECIST asks before confirmation"
        ]
    return []


_BEST = (Response.ICR, Response.IPR)
_STABLE = (Response.ICR, Response.IPR, Response.ISD, Response.NON_ICR_NON_IUPD)


def best_overall_responses(
    responses: Sequence[TimepointResponse], baseline: date, params: AssessmentParameters
) -> Iterator[Response]:
    """iBOR (Seymour Table 3) of the first 1, 2, ... of *responses*, in one pass: the
    best of iCR > iPR > iSD before iCPD (SD duration applies); else iCPD if confirmed,
    iUPD if any, NE otherwise. After the first iCPD it no longer changes."""
    before: set[Response | None] = set()  # the responses before the first iCPD
    lasting: set[Response | None] = set()  # stable ones at least sd_min_days on
    confirmed_pd = False
    for response in responses:
        if response.overall is Response.ICPD:
            confirmed_pd = True
        if not confirmed_pd:
            before.add(response.overall)
            if (
                response.overall in _STABLE
                and (response.date - baseline).days >= params.sd_min_days
            ):
                lasting.add(response.overall)
        yield _best(before, lasting, confirmed_pd)


def _best(
    before: set[Response | None], lasting: set[Response | None], confirmed_pd: bool
) -> Response:
    for category in _BEST:
        if category in before:
            return category
    if lasting:
        if lasting == {Response.NON_ICR_NON_IUPD}:
            return Response.NON_ICR_NON_IUPD
        return Response.ISD
    if confirmed_pd:
        return Response.ICPD
    if Response.IUPD in before:
        return Response.IUPD
    return Response.NE
