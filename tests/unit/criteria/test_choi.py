"""Choi and modified Choi (criteria.md 5 and 6)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from service.domain.criteria import choi
from service.domain.model import (
    AssessmentParameters,
    LesionState,
    Response,
    TimepointReport,
    TimepointResponse,
)
from tests.builders import history, lesion, report

CR, PR, SD, PD, NE = Response.CR, Response.PR, Response.SD, Response.PD, Response.NE


def last(*reports: TimepointReport, modified: bool = False, **params: object) -> TimepointResponse:
    assess = choi.assess_modified if modified else choi.assess
    return assess(history(*reports), AssessmentParameters(**params)).responses[-1]  # type: ignore[arg-type]


def pair(size: float | str, hu: float | str | None, *others: object) -> TimepointReport:
    return report("2024-03-01", lesion("T1", size, hu=hu), *others)  # type: ignore[arg-type]


BASE = report("2024-01-01", lesion("T1", 100, hu=80))


@pytest.mark.parametrize(
    ("size", "hu", "expected"),
    [
        (90, 80, PR),  # size -10 % exactly
        ("90.1", 80, SD),  # size -9.9 %, density unchanged
        (100, 68, PR),  # density -15 % exactly
        (100, "68.1", SD),  # density -14.875 %
        (110, 80, PD),  # size +10 % and no density response
        (120, 60, PR),  # a GIST that grows but loses >= 15 % density is PR
        ("109.9", 80, SD),
    ],
)
def test_choi_thresholds(size: float | str, hu: float | str | None, expected: Response) -> None:
    assert last(BASE, pair(size, hu)).overall is expected


def test_every_lesion_gone_is_cr() -> None:
    gone = report("2024-03-01", lesion("T1", state=LesionState.ABSENT))
    assert last(BASE, gone).overall is CR


def test_modified_choi_needs_size_and_density() -> None:
    assert last(BASE, pair(90, 80), modified=True).overall is SD
    assert last(BASE, pair(100, 68), modified=True).overall is SD
    assert last(BASE, pair(90, 68), modified=True).overall is PR


def test_new_lesion_or_intratumoral_nodule_is_pd() -> None:
    assert last(BASE, pair(80, 50, lesion("New 1", 5))).overall is PD
    nodule = report("2024-03-01", lesion("T1", 80, hu=50, findings={"intratumoral-nodule": "new"}))
    assert last(BASE, nodule).overall is PD


def test_size_pd_without_density_is_pd_with_a_warning() -> None:
    response = last(BASE, pair(115, None))
    assert response.overall is PD
    assert any("density" in w for w in response.warnings)


def test_size_reference_for_pd_can_be_the_nadir() -> None:
    reports = [BASE, report("2024-02-01", lesion("T1", 80, hu=80)), pair(90, 80)]
    assert last(*reports).overall is PR  # -10 % from baseline
    assert last(*reports, choi_size_reference="nadir").overall is PD  # +12.5 % over 80


def test_density_aggregation_mean_or_size_weighted() -> None:
    base = report("2024-01-01", lesion("T1", 100, hu=100), lesion("T2", 10, hu=100))
    # T1 (big) keeps its density, T2 (small) loses 40 %: the unweighted mean falls
    # 20 %, the size-weighted mean about 3.6 %.
    follow = report("2024-03-01", lesion("T1", 100, hu=100), lesion("T2", 10, hu=60))
    assert last(base, follow).overall is PR
    assert last(base, follow, choi_hu_aggregation="size-weighted").overall is SD


def test_a_non_positive_baseline_density_is_not_used() -> None:
    base = report("2024-01-01", lesion("T1", 100, hu=-5))
    assessment = choi.assess(history(base, pair(100, -50)), AssessmentParameters())
    assert assessment.responses[-1].overall is SD
    assert any("meaningless" in w for w in assessment.warnings)


def test_aggregate_density_is_exact() -> None:
    values = {"a": Decimal("72.8"), "b": Decimal("27.2")}
    assert choi.aggregate_density(values, {}, ["a", "b"], "mean") == Decimal(50)


def test_a_missing_target_is_ne() -> None:
    missing = report("2024-03-01", lesion("T1", state=LesionState.NOT_ASSESSED))
    assert last(BASE, missing).overall is NE
