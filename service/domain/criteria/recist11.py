"""RECIST 1.1 response assessment (Eisenhauer et al., Eur J Cancer 2009; criteria.md 3).

The history is evaluated as a fold: each timepoint needs only the baseline sum,
the nadir, the previous evaluable response and whether PR was already reached,
so a timepoint's verdict never depends on anything after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal

from service.domain.criteria._sums import (
    at_least_percent_above,
    at_least_percent_below,
    display,
    lesion_size,
    percent_change,
    total,
)
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
    LesionObservation,
    LesionRole,
    LesionState,
    Response,
    SumOfDiameters,
    Timepoint,
    TimepointResponse,
    TrackedLesion,
)

CRITERION = "recist-1.1"
PR_DECREASE_PERCENT = 30  # PR: sum at least 30 % below the baseline sum (3.4 step 5)
PD_INCREASE_PERCENT = 20  # PD: sum at least 20 % above the nadir ... (3.4 step 4)
PD_MIN_ABSOLUTE_MM = Decimal(5)  # ... and at least 5 mm above it
NODE_NORMAL_MM = Decimal(10)  # a node under this short axis is normal (3.4 step 2)

Sizes = dict[str, Decimal | None]


@dataclass(frozen=True, slots=True)
class _Progress:
    """What the next timepoint needs to know about the ones before it."""

    nadir: Decimal
    previous_overall: Response | None = None  # last evaluable (non-NE) response
    first_pr: date | None = None  # first target PR, for persistence
    pr_confirmed: bool = False


@dataclass(frozen=True, slots=True)
class _Disease:
    """The patient's lesions by role, as RECIST uses them."""

    targets: tuple[TrackedLesion, ...]
    non_targets: tuple[TrackedLesion, ...]
    new: tuple[TrackedLesion, ...]


def assess(history: History, params: AssessmentParameters) -> Assessment:
    """Apply RECIST 1.1 to every timepoint of *history* (the first is baseline)."""
    baseline = history.timepoints[0]
    disease, warnings = _disease(history, baseline)
    baseline_sizes = _sizes(disease.targets, baseline)
    baseline_sum = total(size for size in baseline_sizes.values() if size is not None)
    responses = [_baseline_response(baseline, disease, baseline_sum)]
    progress = _Progress(nadir=baseline_sum)
    for timepoint in history.timepoints[1:]:
        response, progress = _evaluate(timepoint, disease, baseline_sum, progress, params)
        best = best_overall_response([*responses[1:], response], baseline.date, params)
        responses.append(replace(response, best_overall=best))
    return Assessment(
        criterion=CRITERION,
        patient=history.patient,
        responses=tuple(responses),
        warnings=history.warnings + tuple(warnings),
    )


def _disease(history: History, baseline: Timepoint) -> tuple[_Disease, list[str]]:
    """Targets, non-targets and new lesions, with the baseline checks of 3.1."""
    warnings: list[str] = []
    targets: list[TrackedLesion] = []
    non_targets = list(history.with_role(LesionRole.NON_TARGET))
    per_organ: dict[str, int] = {}
    for lesion in history.with_role(LesionRole.TARGET):
        observation = baseline.observations.get(lesion.key)
        size = lesion_size(lesion, observation)
        if observation is None or size is None:
            warnings.append(
                f"target {lesion.identity} has no baseline measurement; "
                "it is followed as a non-target"
            )
            non_targets.append(lesion)
            continue
        targets.append(lesion)
        warnings.extend(_measurability_warnings(lesion, observation, size))
        organ = NODAL_ORGAN if lesion.is_nodal else _site_key(lesion)
        per_organ[organ] = per_organ.get(organ, 0) + 1
    if len(targets) > MAX_TARGETS:
        warnings.append(f"{len(targets)} targets at baseline; RECIST 1.1 allows {MAX_TARGETS}")
    for organ, count in per_organ.items():
        if count > MAX_TARGETS_PER_ORGAN and not organ.startswith("unknown:"):
            warnings.append(
                f"{count} targets in {organ}; RECIST 1.1 allows {MAX_TARGETS_PER_ORGAN} per organ"
            )
    new = tuple(lesion for lesion in history.lesions.values() if lesion.role.is_new)
    return _Disease(tuple(targets), tuple(non_targets), new), warnings


def _site_key(lesion: TrackedLesion) -> str:
    if lesion.site is None:
        return f"unknown:{lesion.key}"
    return lesion.site.meaning or lesion.site.value


def _measurability_warnings(
    lesion: TrackedLesion, observation: LesionObservation, size: Decimal
) -> list[str]:
    if lesion.is_nodal:
        minimum = MIN_MEASURABLE_NODE_MM
        what = "short axis"
    else:
        minimum = minimum_measurable_mm(observation.slice_thickness_mm)
        what = "longest diameter"
    if size >= minimum:
        return []
    return [
        f"target {lesion.identity} is not measurable at baseline: {what} "
        f"{display(size)} mm < {display(minimum)} mm (RECIST 1.1, 3.1)"
    ]


def _sizes(targets: Sequence[TrackedLesion], timepoint: Timepoint) -> Sizes:
    return {
        lesion.key: lesion_size(lesion, timepoint.observations.get(lesion.key))
        for lesion in targets
    }


def _baseline_response(
    baseline: Timepoint, disease: _Disease, baseline_sum: Decimal
) -> TimepointResponse:
    sums = None
    explanation = [f"baseline {baseline.date}"]
    if disease.targets:
        sums = SumOfDiameters(
            current_mm=baseline_sum,
            baseline_mm=baseline_sum,
            nadir_mm=None,
            pct_from_baseline=Decimal(0),
            pct_from_nadir=None,
            abs_from_nadir_mm=None,
        )
        explanation.append(
            f"{len(disease.targets)} target lesion(s), baseline sum of diameters "
            f"{display(baseline_sum)} mm"
        )
    explanation.append(f"{len(disease.non_targets)} non-target lesion(s)")
    return TimepointResponse(
        date=baseline.date,
        overall=None,
        target=None,
        non_target=None,
        new_lesions=False,
        best_overall=None,
        sums=sums,
        explanation=tuple(explanation),
    )


def _evaluate(
    timepoint: Timepoint,
    disease: _Disease,
    baseline_sum: Decimal,
    progress: _Progress,
    params: AssessmentParameters,
) -> tuple[TimepointResponse, _Progress]:
    explanation: list[str] = []
    warnings: list[str] = []
    target: Response | None = None
    sums: SumOfDiameters | None = None
    if disease.targets:
        sizes = _sizes(disease.targets, timepoint)
        target, why = target_response(disease.targets, sizes, baseline_sum, progress, params)
        explanation.append(why)
        sums = _sums(sizes, baseline_sum, progress.nadir)
    non_target = non_target_response(disease.non_targets, timepoint)
    if non_target is not None:
        explanation.append(f"non-target response {non_target.value}")
    new_lesions, equivocal = new_lesion_progression(disease.new, timepoint)
    if new_lesions:
        explanation.append("unequivocal new lesion(s): progression (RECIST 1.1, 4.3.3)")
    warnings.extend(
        f"equivocal new lesion {name}: not progression unless a later scan confirms it"
        for name in equivocal
    )
    overall = overall_response(target, non_target, new_lesions)
    explanation.insert(0, f"overall response {overall.value}")
    return (
        TimepointResponse(
            date=timepoint.date,
            overall=overall,
            target=target,
            non_target=non_target,
            new_lesions=new_lesions,
            best_overall=None,
            sums=sums,
            explanation=tuple(explanation),
            warnings=tuple(warnings),
        ),
        _advance(progress, timepoint.date, target, overall, sums, params),
    )


def _sums(sizes: Sizes, baseline_sum: Decimal, nadir: Decimal) -> SumOfDiameters:
    if any(size is None for size in sizes.values()):
        current = None
    else:
        current = total(size for size in sizes.values() if size is not None)
    return SumOfDiameters(
        current_mm=current,
        baseline_mm=baseline_sum,
        nadir_mm=nadir,
        pct_from_baseline=None if current is None else percent_change(current, baseline_sum),
        pct_from_nadir=None if current is None else percent_change(current, nadir),
        abs_from_nadir_mm=None if current is None else current - nadir,
    )


def _advance(
    progress: _Progress,
    day: date,
    target: Response | None,
    overall: Response,
    sums: SumOfDiameters | None,
    params: AssessmentParameters,
) -> _Progress:
    """The nadir excludes NE timepoints (3.3); PR persistence needs the first PR."""
    nadir = progress.nadir
    if sums is not None and sums.current_mm is not None:
        nadir = min(nadir, sums.current_mm)
    first_pr = progress.first_pr
    pr_confirmed = progress.pr_confirmed
    if target in (Response.PR, Response.CR):
        if first_pr is None and target is Response.PR:
            first_pr = day
        elif first_pr is not None and (day - first_pr).days >= params.confirm_min_days:
            pr_confirmed = True
    return _Progress(
        nadir=nadir,
        previous_overall=overall if overall is not Response.NE else progress.previous_overall,
        first_pr=first_pr,
        pr_confirmed=pr_confirmed,
    )


def target_response(
    targets: Sequence[TrackedLesion],
    sizes: Sizes,
    baseline_sum: Decimal,
    progress: _Progress,
    params: AssessmentParameters,
) -> tuple[Response, str]:
    """Target-lesion response in the order of criteria.md 3.4, with its reason."""
    nadir = progress.nadir
    known = total(size for size in sizes.values() if size is not None)
    missing = [str(lesion.identity) for lesion in targets if sizes[lesion.key] is None]
    pd_by_sum = known - nadir >= PD_MIN_ABSOLUTE_MM and at_least_percent_above(
        known, nadir, PD_INCREASE_PERCENT
    )
    numbers = f"sum {display(known)} mm, nadir {display(nadir)} mm"
    # Step 1: missing targets make NE unless the known ones already prove PD.
    if missing:
        if pd_by_sum:
            return Response.PD, (
                f"target PD although {', '.join(missing)} not assessed: the assessed "
                f"targets alone are >= 20 % and >= 5 mm over the nadir ({numbers})"
            )
        return Response.NE, f"target NE: {', '.join(missing)} not assessed"
    # Step 2: CR — non-nodal targets gone, nodes under 10 mm short axis.
    if all(_normal(lesion, sizes[lesion.key]) for lesion in targets):
        return Response.CR, (
            f"target CR: non-nodal targets disappeared and nodal targets < "
            f"{NODE_NORMAL_MM} mm short axis ({numbers})"
        )
    # Step 3: reappearance after CR is PD whatever the sum.
    if progress.previous_overall is Response.CR:
        return Response.PD, (f"target PD: disease reappeared after a complete response ({numbers})")
    # Step 4: PD by sum — at least 20 % and at least 5 mm over the nadir.
    if pd_by_sum:
        change = percent_change(known, nadir)
        return Response.PD, (
            f"target PD: {numbers}, +{display(known - nadir)} mm"
            + (f" (+{display(change)} %)" if change is not None else "")
            + f" >= {PD_INCREASE_PERCENT} % and >= {PD_MIN_ABSOLUTE_MM} mm"
        )
    # Step 5: PR — at least 30 % below the baseline sum.
    from_baseline = percent_change(known, baseline_sum)
    vs_baseline = (
        f"sum {display(known)} mm vs baseline {display(baseline_sum)} mm "
        f"({display(from_baseline)} %)"
    )
    if at_least_percent_below(known, baseline_sum, PR_DECREASE_PERCENT):
        return Response.PR, f"target PR: {vs_baseline}, a decrease >= {PR_DECREASE_PERCENT} %"
    # Step 6: PR persists until PD or CR (RWG FAQ), once reached (and confirmed).
    if (
        params.pr_persistence
        and progress.first_pr is not None
        and (progress.pr_confirmed or not params.confirmation)
    ):
        return Response.PR, (
            f"target PR persists (reached {progress.first_pr}; neither PD nor CR since): "
            f"{vs_baseline}"
        )
    return Response.SD, (
        f"target SD: {vs_baseline}; neither a {PR_DECREASE_PERCENT} % decrease nor "
        f"PD over the nadir {display(nadir)} mm"
    )


def _normal(lesion: TrackedLesion, size: Decimal | None) -> bool:
    if size is None:
        return False
    return size < NODE_NORMAL_MM if lesion.is_nodal else size == 0


def non_target_response(
    non_targets: Sequence[TrackedLesion], timepoint: Timepoint
) -> Response | None:
    """Non-target response (criteria.md 3.5); None when there are none (NA).

    Non-target progression is never inferred from numbers: it is the reader's
    assertion (state UNEQUIVOCAL PROGRESSION).
    """
    if not non_targets:
        return None
    observations = [timepoint.observations.get(lesion.key) for lesion in non_targets]
    if any(o is not None and o.state is LesionState.UNEQUIVOCAL_PROGRESSION for o in observations):
        return Response.PD
    if any(o is None or o.state is LesionState.NOT_ASSESSED for o in observations):
        return Response.NE
    if all(
        _non_target_gone(lesion, observation)
        for lesion, observation in zip(non_targets, observations, strict=True)
    ):
        return Response.CR
    return Response.NON_CR_NON_PD


def _non_target_gone(lesion: TrackedLesion, observation: LesionObservation | None) -> bool:
    if observation is None:
        return False
    if observation.state in (LesionState.ABSENT, LesionState.MERGED):
        return True
    size = observation.short_axis_mm if lesion.is_nodal else observation.long_axis_mm
    if size is None:
        return False
    return size < NODE_NORMAL_MM if lesion.is_nodal else size == 0


def new_lesion_progression(
    new: Sequence[TrackedLesion], timepoint: Timepoint
) -> tuple[bool, list[str]]:
    """Whether an unequivocal new lesion is seen, and the equivocal ones (3.6).

    A new node under 10 mm short axis is not a lesion (RWG FAQ "New lymph node
    lesions").
    """
    unequivocal = False
    equivocal: list[str] = []
    for lesion in new:
        observation = timepoint.observations.get(lesion.key)
        if observation is None or observation.state in (
            LesionState.ABSENT,
            LesionState.NOT_ASSESSED,
        ):
            continue
        if observation.state is LesionState.EQUIVOCAL:
            equivocal.append(str(lesion.identity))
            continue
        if lesion.is_nodal:
            short_axis = observation.short_axis_mm
            if short_axis is not None and short_axis < NODE_NORMAL_MM:
                continue
        unequivocal = True
    return unequivocal, equivocal


def overall_response(
    target: Response | None, non_target: Response | None, new_lesions: bool
) -> Response:
    """Time-point response: Table 1 (with targets) or Table 2 (non-targets only).

    ``None`` means the patient has no such lesions (NA).
    """
    if new_lesions or Response.PD in (target, non_target):
        return Response.PD
    if target is None:  # Table 2: non-target disease only
        if non_target is None:
            return Response.NE
        return non_target
    if target is Response.CR:
        return Response.CR if non_target in (Response.CR, None) else Response.PR
    return target  # PR, SD or NE, whatever the non-targets (non-PD or NE)


_SD_CLASS = (Response.CR, Response.PR, Response.SD, Response.NON_CR_NON_PD)


def best_overall_response(
    responses: Sequence[TimepointResponse],
    baseline: date,
    params: AssessmentParameters,
) -> Response:
    """Best overall response up to and including the first PD (criteria.md 3.9).

    *responses* are the on-study timepoints in date order (baseline excluded).
    """
    considered: list[TimepointResponse] = []
    for response in responses:
        considered.append(response)
        if response.overall is Response.PD:
            break
    overall = [r.overall for r in considered]
    if params.confirmation:
        if _confirmed(considered, Response.CR, (Response.CR,), params):
            return Response.CR
        if _confirmed(considered, Response.PR, (Response.PR, Response.CR), params):
            return Response.PR
    else:
        for category in (Response.CR, Response.PR):
            if category in overall:
                return category
    lasting = [
        r.overall
        for r in considered
        if r.overall in _SD_CLASS and (r.date - baseline).days >= params.sd_min_days
    ]
    if lasting:
        only_non_cr = all(o is Response.NON_CR_NON_PD for o in lasting)
        return Response.NON_CR_NON_PD if only_non_cr else Response.SD
    if Response.PD in overall:
        return Response.PD
    return Response.NE


def _confirmed(
    responses: Sequence[TimepointResponse],
    first: Response,
    confirming: tuple[Response, ...],
    params: AssessmentParameters,
) -> bool:
    """A *first* response confirmed by a later one >= confirm_min_days after it,
    with only confirming or NE responses in between (criteria.md 3.9, [I])."""
    allowed_between = (*confirming, Response.NE)
    for i, start in enumerate(responses):
        if start.overall is not first and not (
            first is Response.PR and start.overall is Response.CR
        ):
            continue
        for later in responses[i + 1 :]:
            if later.overall not in allowed_between:
                break
            if (
                later.overall in confirming
                and (later.date - start.date).days >= params.confirm_min_days
            ):
                return True
    return False
