"""RECIST 1.1 response assessment (Eisenhauer et al., Eur J Cancer 2009; criteria.md 3).

The history is evaluated as a fold: each timepoint needs only the baseline sum, the
nadir, the previous evaluable response and whether PR was already reached
(:class:`Progress`), so a timepoint's verdict never depends on a later one, except
for an equivocal new lesion confirmed later, whose progression is dated back to its
first sight (3.6).

mRECIST and iRECIST reuse these functions: mRECIST through :class:`SizeRules`
(another size per lesion, another PD clause), iRECIST by calling the component
responses and keeping its own state.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal

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
from service.domain.sums import (
    at_least_percent_above,
    at_least_percent_below,
    display,
    lesion_size,
    percent_change,
    total,
)

CRITERION = "recist-1.1"
PR_DECREASE_PERCENT = 30  # PR: sum at least 30 % below the baseline sum (3.4 step 5)
PD_INCREASE_PERCENT = 20  # PD: sum at least 20 % above the nadir ... (3.4 step 4)
PD_MIN_ABSOLUTE_MM = Decimal(5)  # ... and at least 5 mm above it
NODE_NORMAL_MM = Decimal(10)  # a node under this short axis is normal (3.4 step 2)

Sizes = dict[str, Decimal | None]
LesionSize = Callable[[TrackedLesion, LesionObservation | None], Decimal | None]
# The best overall response after each of the on-study responses in turn (baseline date
# and parameters given): what :func:`with_best_overall` attaches to each timepoint.
RunningBest = Callable[
    [Sequence[TimepointResponse], date, AssessmentParameters], Iterator[Response]
]


@dataclass(frozen=True, slots=True)
class SizeRules:
    """What a size-based criterion sums and how it thresholds the sum."""

    criterion: str
    name: str
    size: LesionSize
    pd_min_absolute_mm: Decimal
    sum_name: str = "sum of diameters"


RULES = SizeRules(CRITERION, "RECIST 1.1", lesion_size, PD_MIN_ABSOLUTE_MM)


@dataclass(frozen=True, slots=True)
class Progress:
    """What the next timepoint needs to know about the ones before it."""

    nadir: Decimal
    previous_overall: Response | None = None  # last evaluable (non-NE) response
    first_pr: date | None = None  # first target PR, for persistence
    pr_confirmed: bool = False


@dataclass(frozen=True, slots=True)
class Disease:
    """The patient's lesions by role, as RECIST uses them."""

    targets: tuple[TrackedLesion, ...]
    non_targets: tuple[TrackedLesion, ...]
    new: tuple[TrackedLesion, ...]


@dataclass(frozen=True, slots=True)
class NewLesions:
    """New lesions seen at one timepoint (3.6), by tracked-lesion key."""

    unequivocal: tuple[str, ...] = ()
    equivocal: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Step:
    """One follow-up timepoint's evaluation, with everything it was evaluated from
    besides its :class:`Fold`'s context: the timepoint's observations (by identity: they
    are immutable) and the :class:`Progress` before it."""

    day: date
    preliminary: bool
    keys: tuple[str, ...]
    observations: tuple[LesionObservation, ...]  # of the keys, in their order
    before: Progress
    response: TimepointResponse
    new: NewLesions
    after: Progress

    def holds_for(self, timepoint: Timepoint, before: Progress) -> bool:
        """Whether evaluating *timepoint* after *before* would give this step again."""
        return (
            self.day == timepoint.date
            and self.preliminary == timepoint.preliminary
            and self.before == before
            and self.keys == tuple(timepoint.observations)
            and all(
                observation is kept
                for kept, observation in zip(
                    self.observations, timepoint.observations.values(), strict=True
                )
            )
        )


@dataclass(frozen=True, slots=True)
class Fold:
    """The follow-up steps of one assessment and the context they were evaluated in.

    Each step is a pure function of its timepoint, its :class:`Progress` and this
    context, so a later assessment of the patient takes every leading step whose
    inputs are unchanged and evaluates only from the first that differs: appending a
    timepoint evaluates that timepoint alone (issue 7, history growth).
    """

    rules: SizeRules
    params: AssessmentParameters
    disease: Disease
    baseline_sum: Decimal
    steps: tuple[Step, ...]

    def steps_for(
        self,
        rules: SizeRules,
        params: AssessmentParameters,
        disease: Disease,
        baseline_sum: Decimal,
    ) -> tuple[Step, ...]:
        """The steps, if they were evaluated in this context; else none."""
        same = (
            self.rules is rules
            and self.params == params
            and self.baseline_sum == baseline_sum
            and self.disease == disease
        )
        return self.steps if same else ()


def assess(history: History, params: AssessmentParameters) -> Assessment:
    """Apply RECIST 1.1 to every timepoint of *history* (the first is baseline)."""
    return assess_by_size(history, params, RULES)


def assess_by_size(history: History, params: AssessmentParameters, rules: SizeRules) -> Assessment:
    """The RECIST 1.1 algorithm with the lesion size and PD clause of *rules*."""
    return fold_by_size(history, params, rules)[0]


def fold_by_size(
    history: History,
    params: AssessmentParameters,
    rules: SizeRules,
    earlier: Fold | None = None,
) -> tuple[Assessment, Fold]:
    """:func:`assess_by_size`, taking from *earlier* (the fold of a previous assessment
    of the patient) every step that still holds; returns the assessment and its fold."""
    baseline = history.timepoints[0]
    disease, warnings = classify(history, rules)
    baseline_sum = _baseline_sum(disease, baseline, rules)
    kept = earlier.steps_for(rules, params, disease, baseline_sum) if earlier else ()
    steps: list[Step] = []
    progress = Progress(nadir=baseline_sum)
    for index, timepoint in enumerate(history.timepoints[1:]):
        if index < len(kept) and kept[index].holds_for(timepoint, progress):
            step = kept[index]
        else:
            kept = ()
            step = _evaluate(timepoint, disease, baseline_sum, progress, params, rules)
        steps.append(step)
        progress = step.after
    return _folded(
        history, params, Fold(rules, params, disease, baseline_sum, tuple(steps)), warnings
    )


def resume_by_size(
    history: History, params: AssessmentParameters, settled: Fold
) -> tuple[Assessment, Fold] | None:
    """:func:`fold_by_size` of a resumed history (``history.resume_history``: the
    baseline, then only the timepoints after those *settled* has steps for), or None
    when *settled* was evaluated in another context (parameters, disease, baseline sum)
    and the whole history must be assessed again."""
    if settled.params != params:
        return None
    rules = settled.rules
    baseline = history.timepoints[0]
    disease, warnings = classify(history, rules)
    baseline_sum = _baseline_sum(disease, baseline, rules)
    kept = settled.steps_for(rules, params, disease, baseline_sum)
    if len(kept) != len(settled.steps):
        return None
    steps = list(kept)
    progress = steps[-1].after if steps else Progress(nadir=baseline_sum)
    for timepoint in history.timepoints[1:]:
        steps.append(_evaluate(timepoint, disease, baseline_sum, progress, params, rules))
        progress = steps[-1].after
    return _folded(
        history, params, Fold(rules, params, disease, baseline_sum, tuple(steps)), warnings
    )


def _baseline_sum(disease: Disease, baseline: Timepoint, rules: SizeRules) -> Decimal:
    return total(s for s in sizes(disease.targets, baseline, rules).values() if s is not None)


def _folded(
    history: History, params: AssessmentParameters, fold: Fold, warnings: Sequence[str]
) -> tuple[Assessment, Fold]:
    """The assessment made of *fold*'s steps after the baseline of *history*."""
    rules = fold.rules
    baseline = history.timepoints[0]
    responses = [baseline_response(baseline, fold.disease, fold.baseline_sum, rules)]
    responses.extend(step.response for step in fold.steps)
    news = [NewLesions(), *(step.new for step in fold.steps)]
    responses = _date_back_confirmed_equivocal(responses, news, history)
    assessment = Assessment(
        criterion=rules.criterion,
        patient=history.patient,
        responses=with_best_overall(responses, params),
        warnings=history.warnings + tuple(warnings),
    )
    return assessment, fold


def with_best_overall(
    responses: Sequence[TimepointResponse],
    params: AssessmentParameters,
    running: RunningBest | None = None,
) -> tuple[TimepointResponse, ...]:
    """Each on-study response with the best overall response up to its date, from one
    pass of *running* (by default RECIST 1.1's :func:`best_overall_responses`)."""
    running = running or best_overall_responses
    on_study = responses[1:]
    bests = running(on_study, responses[0].date, params)
    return (
        responses[0],
        *(replace(r, best_overall=best) for r, best in zip(on_study, bests, strict=True)),
    )


def classify(history: History, rules: SizeRules) -> tuple[Disease, list[str]]:
    """Targets, non-targets and new lesions, with the baseline checks of 3.1.

    A declared target without a baseline size is followed as a non-target.
    """
    baseline = history.timepoints[0]
    warnings: list[str] = []
    targets: list[TrackedLesion] = []
    non_targets = list(history.with_role(LesionRole.NON_TARGET))
    per_organ: dict[str, int] = {}
    for lesion in history.with_role(LesionRole.TARGET):
        observation = baseline.observations.get(lesion.key)
        size = rules.size(lesion, observation)
        if observation is None or size is None:
            warnings.append(
                f"target {lesion.identity} has no baseline {rules.sum_name} value; "
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
    return Disease(tuple(targets), tuple(non_targets), new), warnings


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


def sizes(targets: Sequence[TrackedLesion], timepoint: Timepoint, rules: SizeRules) -> Sizes:
    return {
        lesion.key: rules.size(lesion, timepoint.observations.get(lesion.key)) for lesion in targets
    }


def baseline_response(
    baseline: Timepoint, disease: Disease, baseline_sum: Decimal, rules: SizeRules
) -> TimepointResponse:
    """The baseline has sums but no response."""
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
            f"{len(disease.targets)} target lesion(s), baseline {rules.sum_name} "
            f"{display(baseline_sum)} mm"
        )
    explanation.append(f"{len(disease.non_targets)} non-target lesion(s)")
    return TimepointResponse(
        date=baseline.date,
        overall=None,
        sums=sums,
        explanation=tuple(explanation),
    )


def _evaluate(
    timepoint: Timepoint,
    disease: Disease,
    baseline_sum: Decimal,
    progress: Progress,
    params: AssessmentParameters,
    rules: SizeRules,
) -> Step:
    """The step of *timepoint* after the timepoints that led to *progress*."""
    explanation: list[str] = []
    warnings: list[str] = []
    target: Response | None = None
    sums: SumOfDiameters | None = None
    if disease.targets:
        now = sizes(disease.targets, timepoint, rules)
        target, why = target_response(disease.targets, now, baseline_sum, progress, params, rules)
        explanation.append(why)
        sums = sum_of_diameters(now, baseline_sum, progress.nadir)
        if target is Response.PD and progress.previous_overall is Response.CR:
            warnings.extend(_reimaging_advice(disease.targets, now))
    non_target = non_target_response(disease.non_targets, timepoint)
    if non_target is not None:
        explanation.append(f"non-target response {non_target.value}")
    new = new_lesions(disease.new, timepoint)
    if new.unequivocal:
        explanation.append(
            "unequivocal new lesion(s) "
            + ", ".join(_names(disease.new, new.unequivocal))
            + ": progression (RECIST 1.1, 4.3.3)"
        )
    warnings.extend(
        f"equivocal new lesion {name}: not progression unless a later scan confirms it"
        for name in _names(disease.new, new.equivocal)
    )
    overall = overall_response(target, non_target, bool(new.unequivocal))
    explanation.insert(0, f"overall response {overall.value}")
    response = TimepointResponse(
        date=timepoint.date,
        overall=overall,
        target=target,
        non_target=non_target,
        new_lesions=bool(new.unequivocal),
        best_overall=None,
        sums=sums,
        explanation=tuple(explanation),
        warnings=tuple(warnings),
    )
    return Step(
        timepoint.date,
        timepoint.preliminary,
        tuple(timepoint.observations),
        tuple(timepoint.observations.values()),
        progress,
        response,
        new,
        advance(progress, timepoint.date, target, overall, sums, params),
    )


def _names(lesions: Sequence[TrackedLesion], keys: Sequence[str]) -> list[str]:
    by_key = {lesion.key: lesion for lesion in lesions}
    return [str(by_key[key].identity) for key in keys]


def _reimaging_advice(targets: Sequence[TrackedLesion], now: Sizes) -> list[str]:
    """RWG FAQ "Abnormal lymph node": one reappearing node alone deserves re-imaging."""
    reappeared = [
        lesion
        for lesion in targets
        if (size := now[lesion.key]) is not None and not _normal(lesion, size)
    ]
    if len(reappeared) == 1 and reappeared[0].is_nodal:
        return [
            f"progression rests on node {reappeared[0].identity} alone reappearing after CR: "
            "consider re-imaging to confirm"
        ]
    return []


def sum_of_diameters(now: Sizes, baseline_sum: Decimal, nadir: Decimal) -> SumOfDiameters:
    """The sums and changes of 3.3; None where a target is missing."""
    current = None if None in now.values() else total(s for s in now.values() if s is not None)
    return SumOfDiameters(
        current_mm=current,
        baseline_mm=baseline_sum,
        nadir_mm=nadir,
        pct_from_baseline=None if current is None else percent_change(current, baseline_sum),
        pct_from_nadir=None if current is None else percent_change(current, nadir),
        abs_from_nadir_mm=None if current is None else current - nadir,
    )


def advance(
    progress: Progress,
    day: date,
    target: Response | None,
    overall: Response,
    sums: SumOfDiameters | None,
    params: AssessmentParameters,
) -> Progress:
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
    previous = overall if overall is not Response.NE else progress.previous_overall
    return Progress(
        nadir=nadir, previous_overall=previous, first_pr=first_pr, pr_confirmed=pr_confirmed
    )


def pd_by_sum(value: Decimal, nadir: Decimal, rules: SizeRules = RULES) -> bool:
    """At least 20 % over the nadir and at least the absolute clause (3.4 step 4).

    An increase is always required, so a criterion without the absolute clause
    (mRECIST) never calls an unchanged zero sum progression.
    """
    increase = value - nadir
    return (
        increase > 0
        and increase >= rules.pd_min_absolute_mm
        and at_least_percent_above(value, nadir, PD_INCREASE_PERCENT)
    )


def target_response(
    targets: Sequence[TrackedLesion],
    now: Sizes,
    baseline_sum: Decimal,
    progress: Progress,
    params: AssessmentParameters,
    rules: SizeRules = RULES,
) -> tuple[Response, str]:
    """Target-lesion response in the order of criteria.md 3.4, with its reason."""
    nadir = progress.nadir
    known = total(size for size in now.values() if size is not None)
    missing = [str(lesion.identity) for lesion in targets if now[lesion.key] is None]
    pd = pd_by_sum(known, nadir, rules)
    numbers = f"{rules.sum_name} {display(known)} mm, nadir {display(nadir)} mm"
    # Step 1: missing targets make NE unless the known ones already prove PD.
    if missing:
        if pd:
            return Response.PD, (
                f"target PD although {', '.join(missing)} not assessed: the assessed "
                f"targets alone are >= {PD_INCREASE_PERCENT} % and >= "
                f"{display(rules.pd_min_absolute_mm)} mm over the nadir ({numbers})"
            )
        return Response.NE, f"target NE: {', '.join(missing)} not assessed"
    # Step 2: CR — non-nodal targets gone, nodes under 10 mm short axis.
    if all(_normal(lesion, now[lesion.key]) for lesion in targets):
        return Response.CR, (
            f"target CR: non-nodal targets disappeared and nodal targets < "
            f"{NODE_NORMAL_MM} mm short axis ({numbers})"
        )
    # Step 3: reappearance after CR is PD whatever the sum.
    if progress.previous_overall is Response.CR:
        return Response.PD, f"target PD: disease reappeared after a complete response ({numbers})"
    # Step 4: PD by sum — at least 20 % and at least 5 mm over the nadir.
    if pd:
        change = percent_change(known, nadir)
        return Response.PD, (
            f"target PD: {numbers}, +{display(known - nadir)} mm"
            + (f" (+{display(change)} %)" if change is not None else "")
            + f" >= {PD_INCREASE_PERCENT} % and >= {display(rules.pd_min_absolute_mm)} mm"
        )
    # Step 5: PR — at least 30 % below the baseline sum.
    from_baseline = percent_change(known, baseline_sum)
    vs_baseline = (
        f"{rules.sum_name} {display(known)} mm vs baseline {display(baseline_sum)} mm "
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


def new_lesions(new: Sequence[TrackedLesion], timepoint: Timepoint) -> NewLesions:
    """The new lesions seen at *timepoint*, unequivocal or equivocal (3.6).

    A new node under 10 mm short axis is not a lesion; one of 10 to < 15 mm is
    equivocal until the next assessment (RWG FAQ "New lymph node lesions").
    """
    unequivocal: list[str] = []
    equivocal: list[str] = []
    for lesion in new:
        observation = timepoint.observations.get(lesion.key)
        if observation is None or observation.state in (
            LesionState.ABSENT,
            LesionState.NOT_ASSESSED,
        ):
            continue
        if observation.state is LesionState.EQUIVOCAL:
            equivocal.append(lesion.key)
            continue
        short_axis = observation.short_axis_mm if lesion.is_nodal else None
        if short_axis is not None and short_axis < NODE_NORMAL_MM:
            continue
        if (
            short_axis is not None
            and short_axis < MIN_MEASURABLE_NODE_MM
            and observation.state is not LesionState.UNEQUIVOCAL_PROGRESSION
        ):
            equivocal.append(lesion.key)
            continue
        unequivocal.append(lesion.key)
    return NewLesions(tuple(unequivocal), tuple(equivocal))


def _date_back_confirmed_equivocal(
    responses: list[TimepointResponse], news: list[NewLesions], history: History
) -> list[TimepointResponse]:
    """An equivocal new lesion later confirmed makes PD from its first sight (3.6)."""
    revised = list(responses)
    first_equivocal: dict[str, int] = {}
    for index, new in enumerate(news):
        for key in new.equivocal:
            first_equivocal.setdefault(key, index)
        for key in new.unequivocal:
            first = first_equivocal.pop(key, None)
            if first is None or revised[first].overall is Response.PD:
                continue
            name = history.lesions[key].identity
            revised[first] = replace(
                revised[first],
                overall=Response.PD,
                new_lesions=True,
                explanation=(
                    f"overall response PD (revised): equivocal new lesion {name} was "
                    f"confirmed on {responses[index].date}; progression is dated to its "
                    f"first observation (RECIST 1.1, 4.3.3)",
                    *revised[first].explanation[1:],
                ),
            )
    return revised


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
    last = deque(best_overall_responses(responses, baseline, params), maxlen=1)
    return last[0] if last else Response.NE


def best_overall_responses(
    responses: Sequence[TimepointResponse],
    baseline: date,
    params: AssessmentParameters,
) -> Iterator[Response]:
    """:func:`best_overall_response` of the first 1, 2, ... of *responses*, in one pass.

    Only the responses up to and including the first PD count (criteria.md 3.9): after
    it the best overall response no longer changes.
    """
    cr = _Confirmation((Response.CR,), params.confirm_min_days)
    pr = _Confirmation((Response.PR, Response.CR), params.confirm_min_days)
    seen: set[Response | None] = set()
    lasting: set[Response | None] = set()  # SD-class responses at least sd_min_days on
    for response in responses:
        if Response.PD not in seen:
            seen.add(response.overall)
            cr.add(response)
            pr.add(response)
            if (
                response.overall in _SD_CLASS
                and (response.date - baseline).days >= params.sd_min_days
            ):
                lasting.add(response.overall)
        yield _best(params, cr, pr, seen, lasting)


def _best(
    params: AssessmentParameters,
    cr: _Confirmation,
    pr: _Confirmation,
    seen: set[Response | None],
    lasting: set[Response | None],
) -> Response:
    if params.confirmation:
        if cr.confirmed:
            return Response.CR
        if pr.confirmed:
            return Response.PR
    else:
        for category in (Response.CR, Response.PR):
            if category in seen:
                return category
    if lasting:
        return Response.NON_CR_NON_PD if lasting == {Response.NON_CR_NON_PD} else Response.SD
    if Response.PD in seen:
        return Response.PD
    return Response.NE


@dataclass(slots=True)
class _Confirmation:
    """Whether a response in *confirming* was confirmed by a later one in *confirming*
    at least *min_days* after it, with only confirming or NE responses in between
    (criteria.md 3.9, [I]): CR by CR; PR by PR or CR (a CR after a PR confirms it, and
    a CR not confirmed as CR may be as PR). Fed one response at a time, in date order.
    """

    confirming: tuple[Response, ...]
    min_days: int
    confirmed: bool = False
    open_since: date | None = None  # earliest response not yet cut off from later ones

    def add(self, response: TimepointResponse) -> None:
        overall = response.overall
        if overall is Response.NE:
            return
        if overall not in self.confirming:
            self.open_since = None  # nothing before this can be confirmed after it
            return
        if self.open_since is not None and (response.date - self.open_since).days >= self.min_days:
            self.confirmed = True
        if self.open_since is None or response.date < self.open_since:
            self.open_since = response.date
