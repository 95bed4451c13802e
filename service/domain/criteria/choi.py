"""Choi criteria for GIST on tyrosine-kinase inhibitors (Choi et al., JCO 2007;
criteria.md 5), and the modified Choi variant (criteria.md 6).

Size is the RECIST 1.1 sum of the target lesions; density the mean attenuation (HU)
of the same targets, aggregated by ``choi_hu_aggregation``. Evaluated in the order
of criteria.md 5: new lesion or intratumoral nodule -> PD; every lesion gone -> CR;
size >= +10 % without a >= 15 % density decrease -> PD; size <= -10 % or density
<= -15 % -> PR (modified Choi: both); otherwise SD.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from service.domain.criteria import recist11
from service.domain.findings import intratumoral_nodule_progression
from service.domain.model import (
    Assessment,
    AssessmentParameters,
    History,
    MeasurementKind,
    Response,
    Timepoint,
    TimepointResponse,
    TrackedLesion,
)
from service.domain.sums import (
    at_least_percent_above,
    at_least_percent_below,
    display,
    percent_change,
    total,
)

CRITERION = "choi"
MODIFIED_CRITERION = "mchoi"
SIZE_PERCENT = 10  # size change, both ways (Choi 2007)
DENSITY_PERCENT = 15  # density decrease (Choi 2007)


@dataclass(frozen=True, slots=True)
class _Reference:
    baseline_sum: Decimal
    baseline_density: dict[str, Decimal]  # target key -> HU (> 0 only)
    baseline_sizes: recist11.Sizes


def assess(history: History, params: AssessmentParameters) -> Assessment:
    """Apply Choi criteria (PR: size >= 10 % OR density >= 15 % decrease)."""
    return _assess(history, params, modified=False)


def assess_modified(history: History, params: AssessmentParameters) -> Assessment:
    """Apply modified Choi (PR needs size >= 10 % AND density >= 15 % decrease)."""
    return _assess(history, params, modified=True)


def _assess(history: History, params: AssessmentParameters, *, modified: bool) -> Assessment:
    disease, warnings = recist11.classify(history, recist11.RULES)
    baseline = history.timepoints[0]
    baseline_sizes = recist11.sizes(disease.targets, baseline, recist11.RULES)
    baseline_sum = total(s for s in baseline_sizes.values() if s is not None)
    density = _densities(disease.targets, baseline)
    for lesion in disease.targets:
        if lesion.key in density and density[lesion.key] <= 0:
            warnings.append(
                f"target {lesion.identity} has a baseline density of "
                f"{display(density[lesion.key])} HU: a percent change is meaningless, "
                "its density is not used (criteria.md 5)"
            )
    reference = _Reference(
        baseline_sum, {k: v for k, v in density.items() if v > 0}, baseline_sizes
    )
    if not reference.baseline_density:
        warnings.append("no target has a baseline mean attenuation: Choi is judged on size only")
    name = "Modified Choi" if modified else "Choi"
    responses = [recist11.baseline_response(baseline, disease, baseline_sum, recist11.RULES)]
    nadir = baseline_sum
    for timepoint in history.timepoints[1:]:
        response = _evaluate(timepoint, disease, reference, nadir, params, modified, name)
        responses.append(response)
        if response.sums is not None and response.sums.current_mm is not None:
            nadir = min(nadir, response.sums.current_mm)
    return Assessment(
        criterion=MODIFIED_CRITERION if modified else CRITERION,
        patient=history.patient,
        responses=recist11.with_best_overall(responses, params),
        warnings=history.warnings + tuple(warnings),
    )


def _densities(targets: Sequence[TrackedLesion], timepoint: Timepoint) -> dict[str, Decimal]:
    found = {}
    for lesion in targets:
        observation = timepoint.observations.get(lesion.key)
        value = None if observation is None else observation.value(MeasurementKind.MEAN_ATTENUATION)
        if value is not None:
            found[lesion.key] = value
    return found


def aggregate_density(
    densities: dict[str, Decimal], sizes: recist11.Sizes, keys: Sequence[str], how: str
) -> Decimal | None:
    """Mean HU over *keys*: unweighted, or weighted by each lesion's size (criteria.md 5, [I])."""
    if not keys:
        return None
    if how == "size-weighted":
        weights = {key: sizes.get(key) or Decimal(0) for key in keys}
        weight = total(weights.values())
        if weight == 0:
            return None
        return total(densities[key] * weights[key] for key in keys) / weight
    return total(densities[key] for key in keys) / len(keys)


def _evaluate(
    timepoint: Timepoint,
    disease: recist11.Disease,
    reference: _Reference,
    nadir: Decimal,
    params: AssessmentParameters,
    modified: bool,
    name: str,
) -> TimepointResponse:
    now = recist11.sizes(disease.targets, timepoint, recist11.RULES)
    sums = recist11.sum_of_diameters(now, reference.baseline_sum, nadir)
    non_target = recist11.non_target_response(disease.non_targets, timepoint)
    new = recist11.new_lesions(disease.new, timepoint)
    nodules = [
        str(lesion.identity)
        for lesion in (*disease.targets, *disease.non_targets)
        if intratumoral_nodule_progression(timepoint.observations.get(lesion.key))
    ]
    warnings: list[str] = []

    def verdict(response: Response, *why: str) -> TimepointResponse:
        return TimepointResponse(
            date=timepoint.date,
            overall=response,
            target=None,
            non_target=non_target,
            new_lesions=bool(new.unequivocal),
            best_overall=None,
            sums=sums,
            explanation=(f"{name} {response.value}", *why),
            warnings=tuple(warnings),
        )

    if new.unequivocal:
        return verdict(Response.PD, "new lesion(s): progression (Choi 2007)")
    if nodules:
        return verdict(
            Response.PD, f"new or enlarging intratumoral nodule in {', '.join(nodules)} (Choi 2007)"
        )
    current = sums.current_mm
    if disease.targets and current == 0 and non_target in (Response.CR, None):
        return verdict(Response.CR, "every lesion disappeared and no new lesion")
    if current is None or not disease.targets:
        return verdict(Response.NE, "a target lesion was not assessed")
    size_ref = reference.baseline_sum if params.choi_size_reference == "baseline" else nadir
    size_text = (
        f"size {display(current)} mm: {display(percent_change(current, reference.baseline_sum))} % "
        f"from baseline {display(reference.baseline_sum)} mm"
    )
    density_change = _density_change(reference, timepoint, disease, now, params)
    density_text = (
        "density not evaluable"
        if density_change is None
        else f"density {display(density_change)} % from baseline"
    )
    density_pr = density_change is not None and density_change <= -DENSITY_PERCENT
    size_pd = at_least_percent_above(current, size_ref, SIZE_PERCENT) and current > size_ref
    if size_pd and not density_pr:
        if density_change is None:
            warnings.append("size PD could not be offset by density: no mean attenuation")
        return verdict(
            Response.PD,
            f"{size_text}; >= +{SIZE_PERCENT} % over the {params.choi_size_reference} sum "
            f"{display(size_ref)} mm and no >= {DENSITY_PERCENT} % density decrease "
            f"({density_text})",
        )
    size_pr = at_least_percent_below(current, reference.baseline_sum, SIZE_PERCENT)
    partial = (size_pr and density_pr) if modified else (size_pr or density_pr)
    rule = "and" if modified else "or"
    if partial and non_target is not Response.PD:
        return verdict(
            Response.PR,
            f"{size_text}; {density_text}: size >= {SIZE_PERCENT} % {rule} density >= "
            f"{DENSITY_PERCENT} % decrease",
        )
    if partial:
        warnings.append(
            "non-target disease progressed unequivocally: Choi PR is excluded "
            "(RECIST 1.1 reports the progression)"
        )
    return verdict(
        Response.SD,
        f"{size_text}; {density_text}: neither PR (size >= {SIZE_PERCENT} % {rule} density >= "
        f"{DENSITY_PERCENT} % decrease) nor PD",
    )


def _density_change(
    reference: _Reference,
    timepoint: Timepoint,
    disease: recist11.Disease,
    now: recist11.Sizes,
    params: AssessmentParameters,
) -> Decimal | None:
    """Percent change of the aggregated density over targets measured both times."""
    current = _densities(disease.targets, timepoint)
    keys = [key for key in reference.baseline_density if key in current]
    before = aggregate_density(
        reference.baseline_density, reference.baseline_sizes, keys, params.choi_hu_aggregation
    )
    after = aggregate_density(current, now, keys, params.choi_hu_aggregation)
    if before is None or after is None:
        return None
    return percent_change(after, before)
