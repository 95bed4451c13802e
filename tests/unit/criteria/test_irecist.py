"""iRECIST (criteria.md 4): iUPD, confirmation by trigger category, reset, iBOR."""

from __future__ import annotations

import pytest

from service.domain.criteria import irecist
from service.domain.model import (
    Assessment,
    AssessmentParameters,
    LesionState,
    Response,
    TimepointReport,
)
from tests.builders import history, lesion, report

DAYS = ["2024-01-01", "2024-02-12", "2024-03-25", "2024-05-06", "2024-06-17", "2024-07-29"]
ICR, IPR, ISD = Response.ICR, Response.IPR, Response.ISD
IUPD, ICPD, NE = Response.IUPD, Response.ICPD, Response.NE


def assess(*reports: TimepointReport) -> Assessment:
    return irecist.assess(history(*reports), AssessmentParameters())


def overall(*reports: TimepointReport) -> list[Response | None]:
    return [r.overall for r in assess(*reports).responses[1:]]


def tp(index: int, t1: float | None, *others: object) -> TimepointReport:
    """Timepoint *index* with target T1 (None: not assessed) and other lesions."""
    target = lesion("T1", t1) if t1 is not None else lesion("T1", state=LesionState.NOT_ASSESSED)
    return report(DAYS[index], target, *others)  # type: ignore[arg-type]


def nt(state: LesionState) -> object:
    return lesion("NT1", state=state)


# Target trigger: baseline 50 mm; 61 mm is +22 % and +11 mm over the nadir.
def test_target_progression_is_unconfirmed_then_confirmed_by_5mm_more() -> None:
    assert overall(tp(0, 50), tp(1, 61), tp(2, 66)) == [IUPD, ICPD]


def test_4mm_more_does_not_confirm_but_increases_add_up() -> None:
    assert overall(tp(0, 50), tp(1, 61), tp(2, 65)) == [IUPD, IUPD]
    assert overall(tp(0, 50), tp(1, 61), tp(2, 65), tp(3, 67)) == [IUPD, IUPD, ICPD]


def test_shrinking_back_resets_the_bar_and_a_new_progression_needs_its_own_confirmation() -> None:
    # 61 -> 40: below the nadir of 50, no PD: iSD; then 40 -> 55 is a new iUPD.
    assert overall(tp(0, 50), tp(1, 61), tp(2, 40), tp(3, 55)) == [IUPD, ISD, IUPD]


def test_non_target_trigger_is_confirmed_by_any_further_increase() -> None:
    base = tp(0, 50, nt(LesionState.PRESENT))
    iupd = tp(1, 50, nt(LesionState.UNEQUIVOCAL_PROGRESSION))
    assert overall(base, iupd, tp(2, 50, nt(LesionState.INCREASED))) == [IUPD, ICPD]
    assert overall(base, iupd, tp(2, 50, nt(LesionState.UNEQUIVOCAL_PROGRESSION))) == [
        IUPD,
        IUPD,
    ]
    assert overall(base, iupd, tp(2, 50, nt(LesionState.PRESENT))) == [IUPD, ISD]


def test_new_lesion_trigger_is_confirmed_by_growth_or_number() -> None:
    base, iupd = tp(0, 50), tp(1, 50, lesion("New 1", 12))
    assert overall(base, iupd, tp(2, 50, lesion("New 1", 17))) == [IUPD, ICPD]
    assert overall(base, iupd, tp(2, 50, lesion("New 1", 12), lesion("New 2", 4))) == [IUPD, ICPD]


def test_an_unchanged_new_lesion_stays_iupd_unless_the_targets_shrank() -> None:
    base, iupd = tp(0, 50), tp(1, 50, lesion("New 1", 12))
    # RWG FAQ scenario F: nothing changed.
    assert overall(base, iupd, tp(2, 50, lesion("New 1", 12))) == [IUPD, IUPD]
    # Scenario B: the baseline disease shrank; the persisting new lesion is accepted.
    shrank = overall(base, iupd, tp(2, 40, lesion("New 1", 12)), tp(3, 40, lesion("New 1", 12)))
    assert shrank == [IUPD, ISD, ISD]


def test_icr_needs_the_new_lesions_gone() -> None:
    base, iupd = tp(0, 50), tp(1, 50, lesion("New 1", 12))
    assert overall(base, iupd, tp(2, 0, lesion("New 1", 12))) == [IUPD, IPR]
    assert overall(base, iupd, tp(2, 0, lesion("New 1", state=LesionState.ABSENT))) == [
        IUPD,
        ICR,
    ]


def test_progression_of_a_category_that_did_not_trigger_confirms() -> None:
    assert overall(tp(0, 50), tp(1, 61), tp(2, 61, lesion("New 1", 12))) == [IUPD, ICPD]


def test_an_ne_timepoint_keeps_the_iupd_pending() -> None:
    assert overall(tp(0, 50), tp(1, 61), tp(2, None), tp(3, 66)) == [IUPD, NE, ICPD]


def test_a_confirmation_outside_the_window_is_flagged() -> None:
    late = report("2024-05-01", lesion("T1", 66))
    responses = assess(tp(0, 50), tp(1, 61), late).responses
    assert responses[2].overall is ICPD
    assert any("confirmation window" in w for w in responses[2].warnings)


def test_recist_pd_is_only_iupd_and_no_pd_is_reported_as_i_categories() -> None:
    assert overall(tp(0, 50), tp(1, 34), tp(2, 30)) == [IPR, IPR]


def _ibor(*reports: TimepointReport) -> Response | None:
    return assess(*reports).responses[-1].best_overall


# Seymour 2017 Table 3, worked examples (criteria.md 4.3).
@pytest.mark.parametrize(
    ("sizes", "expected"),
    [
        ((61, 50, 0), ICR),  # example 2: iUPD, iSD, iCR -> iCR
        ((61, 45), ISD),  # example 5: iUPD, iSD -> iSD
        ((61, 66), ICPD),  # example 6: iUPD, iCPD -> iCPD
        ((61, 64, 67), ICPD),  # example 7: iUPD, iUPD, iCPD -> iCPD
        ((61, None, None, None, None), IUPD),  # example 8: iUPD, NE x4 -> iUPD
    ],
)
def test_table_3_best_overall_response(sizes: tuple[float | None, ...], expected: Response) -> None:
    reports = [tp(0, 50), *(tp(i, size) for i, size in enumerate(sizes, start=1))]
    assert _ibor(*reports) is expected


def test_ibor_ignores_responses_after_icpd() -> None:
    assert _ibor(tp(0, 50), tp(1, 61), tp(2, 66), tp(3, 20)) is ICPD
