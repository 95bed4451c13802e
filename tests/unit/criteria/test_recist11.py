"""RECIST 1.1 (criteria.md 3): sums, nadir, target response, Tables 1-3."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from service.domain.criteria import recist11
from service.domain.model import (
    Assessment,
    AssessmentParameters,
    LesionRole,
    LesionState,
    Response,
    TimepointReport,
    TimepointResponse,
)
from tests.builders import LUNG, history, lesion, node, report, tp

DEFAULT = AssessmentParameters()
CR, PR, SD, PD, NE = Response.CR, Response.PR, Response.SD, Response.PD, Response.NE
NON_CR = Response.NON_CR_NON_PD


def assess(*reports: TimepointReport, params: AssessmentParameters = DEFAULT) -> Assessment:
    return recist11.assess(history(*reports), params)


def last(*reports: TimepointReport, params: AssessmentParameters = DEFAULT) -> TimepointResponse:
    return assess(*reports, params=params).responses[-1]


def test_issue_example_is_pr_with_sum_70_and_minus_30_percent() -> None:
    response = last(tp("2024-01-01", 60, 40), tp("2024-03-01", 42, 28))
    assert response.overall is PR
    assert response.sums is not None
    assert response.sums.current_mm == 70
    assert response.sums.pct_from_baseline == -30


def test_baseline_has_sums_but_no_response() -> None:
    baseline = assess(tp("2024-01-01", 60, 40)).responses[0]
    assert baseline.is_baseline
    assert baseline.sums is not None and baseline.sums.current_mm == 100
    assert baseline.best_overall is None


def test_exactly_30_percent_decrease_is_pr_and_just_under_is_sd() -> None:
    assert last(tp("2024-01-01", 50), tp("2024-03-01", 35)).target is PR
    assert last(tp("2024-01-01", 50), tp("2024-03-01", "35.1")).target is SD


def test_pd_needs_20_percent_and_5mm_over_nadir() -> None:
    # nadir 20 -> 24: +20 % but only +4 mm
    assert last(tp("2024-01-01", 20), tp("2024-03-01", 24)).target is SD
    # nadir 30 -> 36: +20 % and +6 mm (a public suite gets this wrong)
    assert last(tp("2024-01-01", 30), tp("2024-03-01", 36)).target is PD


def test_thresholds_are_exact_where_binary_floats_fail() -> None:
    # (32.4 - 27.0) / 27.0 * 100 is 19.999999999999996 in floats (criteria.md 2)
    assert last(tp("2024-01-01", 27), tp("2024-03-01", "32.4")).target is PD
    # 16.4 - 11.4 is 4.999999999999998 in floats; here +43.9 % and exactly +5 mm
    assert last(tp("2024-01-01", "11.4"), tp("2024-03-01", "16.4")).target is PD


def test_pd_is_measured_from_the_nadir_not_the_baseline() -> None:
    responses = assess(tp("2024-01-01", 100), tp("2024-03-01", 60), tp("2024-05-01", 72)).responses
    assert [r.target for r in responses[1:]] == [PR, PD]
    assert responses[2].sums is not None and responses[2].sums.nadir_mm == 60


def test_pr_persists_until_pd_or_cr_by_default() -> None:
    # RWG FAQ: sums 100/70/70/80/80/80 give PR at every follow-up.
    reports = [tp(f"2024-0{i}-01", s) for i, s in enumerate((100, 70, 70, 80, 80, 80), 1)]
    assert [r.target for r in assess(*reports).responses[1:]] == [PR] * 5
    literal = AssessmentParameters(pr_persistence=False)
    assert [r.target for r in assess(*reports, params=literal).responses[1:]] == [
        PR,
        PR,
        SD,
        SD,
        SD,
    ]


def test_missing_target_is_ne_unless_the_rest_proves_pd() -> None:
    assert last(tp("2024-01-01", 30, 20), tp("2024-03-01", 30, None)).target is NE
    response = last(tp("2024-01-01", 30, 20), tp("2024-03-01", 61, None))
    assert response.target is PD


def test_ne_timepoints_do_not_enter_the_nadir() -> None:
    responses = assess(
        tp("2024-01-01", 30, 20), tp("2024-03-01", 10, None), tp("2024-05-01", 30, 20)
    ).responses
    assert responses[1].target is NE
    assert responses[2].sums is not None and responses[2].sums.nadir_mm == 50


def test_cr_needs_nodes_under_10mm_not_a_zero_sum() -> None:
    baseline = report("2024-01-01", lesion("T1", 30), node("T2", 20))
    follow_up = report("2024-03-01", lesion("T1", 0), node("T2", "9.9"))
    response = last(baseline, follow_up)
    assert response.target is CR and response.overall is CR
    assert response.sums is not None and response.sums.current_mm == Decimal("9.9")
    at_ten = report("2024-03-01", lesion("T1", 0), node("T2", 10))
    assert last(baseline, at_ten).target is PR


def test_too_small_to_measure_counts_5mm_and_disappeared_0() -> None:
    follow_up = report(
        "2024-03-01",
        lesion("T1", state=LesionState.TOO_SMALL_TO_MEASURE),
        lesion("T2", state=LesionState.ABSENT),
    )
    response = last(tp("2024-01-01", 30, 20), follow_up)
    assert response.sums is not None and response.sums.current_mm == 5


def test_split_lesion_contributes_the_sum_of_its_fragments() -> None:
    split = lesion("T1", state=LesionState.SPLIT, fragments=(12, 9))
    response = last(tp("2024-01-01", 30), report("2024-03-01", split))
    assert response.sums is not None and response.sums.current_mm == 21


def test_reappearance_after_cr_is_pd_whatever_the_sum() -> None:
    responses = assess(tp("2024-01-01", 30), tp("2024-03-01", 0), tp("2024-05-01", 3)).responses
    assert [r.overall for r in responses[1:]] == [CR, PD]


def test_percent_from_a_zero_nadir_is_undefined_not_an_error() -> None:
    response = assess(tp("2024-01-01", 30), tp("2024-03-01", 0), tp("2024-05-01", 6)).responses[2]
    assert response.sums is not None and response.sums.pct_from_nadir is None
    assert response.target is PD


def test_unequivocal_new_lesion_is_pd_and_equivocal_only_a_warning() -> None:
    baseline = tp("2024-01-01", 30)
    new = report("2024-03-01", lesion("T1", 30), lesion("New 1", 8))
    assert last(baseline, new).overall is PD
    equivocal = report(
        "2024-03-01", lesion("T1", 30), lesion("New 1", 8, state=LesionState.EQUIVOCAL)
    )
    response = last(baseline, equivocal)
    assert response.overall is SD
    assert any("equivocal new lesion" in warning for warning in response.warnings)


def test_a_new_node_under_10mm_is_not_a_lesion() -> None:
    follow_up = report("2024-03-01", lesion("T1", 30), node("N1", 8))
    assert last(tp("2024-01-01", 30), follow_up).new_lesions is False


def test_non_target_progression_is_the_readers_assertion() -> None:
    baseline = report("2024-01-01", lesion("T1", 30), lesion("NT1", 12))
    grown = report("2024-03-01", lesion("T1", 20), lesion("NT1", 40))
    assert last(baseline, grown).non_target is NON_CR
    asserted = report(
        "2024-03-01",
        lesion("T1", 20),
        lesion("NT1", state=LesionState.UNEQUIVOCAL_PROGRESSION),
    )
    assert last(baseline, asserted).overall is PD


def test_non_target_only_disease_is_never_sd() -> None:
    baseline = report("2024-01-01", lesion("NT1", role=LesionRole.NON_TARGET))
    follow_up = report("2024-03-01", lesion("NT1", state=LesionState.PRESENT))
    response = last(baseline, follow_up)
    assert response.target is None and response.overall is NON_CR


# Eisenhauer 2009 Table 1: target, non-target (None = no non-targets), new -> overall.
TABLE_1 = [
    (CR, CR, False, CR),
    (CR, None, False, CR),
    (CR, NON_CR, False, PR),
    (CR, NE, False, PR),
    (PR, NON_CR, False, PR),
    (PR, NE, False, PR),
    (PR, None, False, PR),
    (SD, NON_CR, False, SD),
    (SD, NE, False, SD),
    (NE, NON_CR, False, NE),
    (NE, None, False, NE),
    (PD, CR, False, PD),
    (PD, NE, True, PD),
    (CR, PD, False, PD),
    (SD, PD, True, PD),
    (CR, CR, True, PD),
    (PR, NON_CR, True, PD),
]


@pytest.mark.parametrize(("target", "non_target", "new", "expected"), TABLE_1)
def test_table_1_time_point_response(target, non_target, new, expected) -> None:
    assert recist11.overall_response(target, non_target, new) is expected


# Eisenhauer 2009 Table 2: non-target only.
TABLE_2 = [
    (CR, False, CR),
    (NON_CR, False, NON_CR),
    (NE, False, NE),
    (PD, False, PD),
    (PD, True, PD),
    (CR, True, PD),
    (NON_CR, True, PD),
]


@pytest.mark.parametrize(("non_target", "new", "expected"), TABLE_2)
def test_table_2_non_target_disease_only(non_target, new, expected) -> None:
    assert recist11.overall_response(None, non_target, new) is expected


def _responses(*pairs: tuple[int, Response]) -> list[TimepointResponse]:
    start = date(2024, 1, 1)
    return [
        TimepointResponse(
            date=start + timedelta(days=day),
            overall=overall,
            target=None,
            non_target=None,
            new_lesions=False,
            best_overall=None,
            sums=None,
        )
        for day, overall in pairs
    ]


CONFIRMED = AssessmentParameters(confirmation=True)

# Eisenhauer 2009 Table 3 (confirmation required): first TP, subsequent TP, and
# the BOR when the minimum SD duration (42 days) is met by the first TP / not met.
TABLE_3 = [
    (CR, CR, CR, CR),
    (CR, PD, SD, PD),
    (CR, SD, SD, PD),  # SD after a true CR is PD by reappearance: both give PD here
    (CR, NE, SD, NE),
    (PR, CR, PR, PR),
    (PR, PR, PR, PR),
    (PR, SD, SD, SD),
    (PR, PD, SD, PD),
    (PR, NE, SD, NE),
    (NE, NE, NE, NE),
]


@pytest.mark.parametrize(("first", "then", "met", "not_met"), TABLE_3)
def test_table_3_best_overall_response_with_confirmation(first, then, met, not_met) -> None:
    if then is SD and first is CR:
        then = PD  # RECIST 1.1 3.4 step 3 turns the SD after a CR into PD
    start = date(2024, 1, 1)
    lasting = _responses((56, first), (112, then))
    assert recist11.best_overall_response(lasting, start, CONFIRMED) is met
    brief = _responses((28, first), (35, then))
    short_params = AssessmentParameters(confirmation=True, confirm_min_days=7)
    expected_brief = not_met
    if first is PR and then is SD:
        expected_brief = NE  # SD at day 35 is under 42 days and there is no PD
    assert recist11.best_overall_response(brief, start, short_params) is expected_brief


def test_best_response_without_confirmation_takes_the_best_before_pd() -> None:
    start = date(2024, 1, 1)
    responses = _responses((30, SD), (60, PR), (90, PD), (120, CR))
    assert recist11.best_overall_response(responses, start, DEFAULT) is PR


def test_sd_counts_only_after_the_minimum_duration() -> None:
    start = date(2024, 1, 1)
    assert recist11.best_overall_response(_responses((41, SD)), start, DEFAULT) is NE
    assert recist11.best_overall_response(_responses((42, SD)), start, DEFAULT) is SD
    assert recist11.best_overall_response(_responses((41, SD), (50, PD)), start, DEFAULT) is PD


def test_an_equivocal_new_lesion_confirmed_later_dates_pd_back_to_first_sight() -> None:
    responses = assess(
        tp("2024-01-01", 30),
        report("2024-03-01", lesion("T1", 30), lesion("New 1", 6, state=LesionState.EQUIVOCAL)),
        report("2024-05-01", lesion("T1", 30), lesion("New 1", 12)),
    ).responses
    assert [r.overall for r in responses[1:]] == [PD, PD]
    assert "confirmed on 2024-05-01" in responses[1].explanation[0]
    assert responses[2].best_overall is PD


def test_an_equivocal_new_lesion_that_resolves_never_counts() -> None:
    responses = assess(
        tp("2024-01-01", 30),
        report("2024-03-01", lesion("T1", 30), lesion("New 1", 6, state=LesionState.EQUIVOCAL)),
        report("2024-05-01", lesion("T1", 30), lesion("New 1", state=LesionState.ABSENT)),
    ).responses
    assert [r.overall for r in responses[1:]] == [SD, SD]


def test_a_new_node_of_10_to_15mm_alone_is_equivocal() -> None:
    response = last(tp("2024-01-01", 30), report("2024-03-01", lesion("T1", 30), node("N1", 12)))
    assert response.overall is SD
    assert any("equivocal new lesion N1" in w for w in response.warnings)


def test_a_single_node_reappearing_after_cr_advises_reimaging() -> None:
    responses = assess(
        report("2024-01-01", node("T1", 20)),
        report("2024-03-01", node("T1", 8)),
        report("2024-05-01", node("T1", 11)),
    ).responses
    assert [r.overall for r in responses[1:]] == [CR, PD]
    assert any("re-imaging" in w for w in responses[2].warnings)


def test_a_target_without_baseline_size_is_followed_as_non_target() -> None:
    assessment = assess(
        report("2024-01-01", lesion("T1", 30), lesion("T2", state=LesionState.PRESENT)),
        report("2024-03-01", lesion("T1", 20), lesion("T2", state=LesionState.PRESENT)),
    )
    assert any("followed as a non-target" in w for w in assessment.warnings)
    assert assessment.responses[-1].non_target is NON_CR


def test_baseline_validation_warns_on_unmeasurable_and_too_many_targets() -> None:
    assessment = assess(
        report(
            "2024-01-01",
            *(lesion(f"T{i}", 20) for i in range(1, 4)),
            lesion("T4", 8),
            node("T5", 12),
            lesion("T6", 20, site=LUNG),
        )
    )
    text = " | ".join(assessment.warnings)
    assert "6 targets at baseline" in text
    assert "4 targets in Liver" in text
    assert "T4 is not measurable" in text and "T5 is not measurable" in text
