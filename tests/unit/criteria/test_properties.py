"""Properties every criterion keeps, over generated histories (hypothesis)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from hypothesis import given, settings, strategies as st

from service.domain.criteria import CRITERIA, irecist, recist11
from service.domain.model import AssessmentParameters, Response, TimepointReport
from tests.builders import history, lesion, report

# Lengths in tenths of a millimetre, so every value is an exact decimal.
sizes = st.integers(min_value=100, max_value=2000).map(lambda tenths: Decimal(tenths) / 10)
target_sets = st.lists(sizes, min_size=1, max_size=5)


def _report(day: str, values: list[Decimal]) -> TimepointReport:
    return report(day, *(lesion(f"T{i}", value) for i, value in enumerate(values, start=1)))


@given(target_sets, st.integers(min_value=30, max_value=100))
def test_shrinking_every_target_by_30_percent_or_more_is_never_pd(
    baseline: list[Decimal], shrink_percent: int
) -> None:
    factor = Decimal(100 - shrink_percent) / 100
    follow = [
        (value * factor).quantize(Decimal("0.1"), rounding="ROUND_DOWN") for value in baseline
    ]
    response = recist11.assess(
        history(_report("2024-01-01", baseline), _report("2024-03-01", follow)),
        AssessmentParameters(),
    ).responses[-1]
    assert response.overall in (Response.PR, Response.CR)


@given(target_sets, st.lists(st.integers(min_value=0, max_value=2000), min_size=5, max_size=5))
def test_pd_by_sum_is_exactly_20_percent_and_5mm_over_the_nadir(
    baseline: list[Decimal], follow_tenths: list[int]
) -> None:
    follow = [Decimal(t) / 10 + 1 for t in follow_tenths[: len(baseline)]]
    response = recist11.assess(
        history(_report("2024-01-01", baseline), _report("2024-03-01", follow)),
        AssessmentParameters(),
    ).responses[-1]
    before, after = sum(baseline), sum(follow)
    expected_pd = after - before >= 5 and (after - before) * 5 >= before
    assert (response.target is Response.PD) == expected_pd


@settings(max_examples=50)
@given(target_sets, target_sets, st.randoms(use_true_random=False))
def test_no_verdict_depends_on_the_order_of_lesions(
    baseline: list[Decimal], follow: list[Decimal], random: object
) -> None:
    follow = (follow * 5)[: len(baseline)]
    reports = [_report("2024-01-01", baseline), _report("2024-03-01", follow)]
    shuffled = []
    for item in reports:
        lesions = list(item.lesions)
        random.shuffle(lesions)  # type: ignore[attr-defined]
        shuffled.append(replace(item, lesions=tuple(lesions)))
    params = AssessmentParameters()
    for assess in CRITERIA.values():
        ordered = assess(history(*reports), params).responses
        permuted = assess(history(*shuffled), params).responses
        assert [r.overall for r in ordered] == [r.overall for r in permuted]
        assert [r.sums for r in ordered] == [r.sums for r in permuted]


@settings(max_examples=50)
@given(st.lists(target_sets, min_size=2, max_size=6))
def test_irecist_speaks_only_in_i_categories(timepoints: list[list[Decimal]]) -> None:
    width = len(timepoints[0])
    reports = [
        _report(f"2024-{month:02d}-01", (values * 5)[:width])
        for month, values in enumerate(timepoints, start=1)
    ]
    responses = irecist.assess(history(*reports), AssessmentParameters()).responses[1:]
    allowed = {Response.ICR, Response.IPR, Response.ISD, Response.IUPD, Response.ICPD, Response.NE}
    assert {r.overall for r in responses} <= allowed
    assert {r.best_overall for r in responses} <= allowed
