"""mRECIST (criteria.md 8): RECIST 1.1 on viable diameters, no 5 mm clause by default."""

from __future__ import annotations

from service.domain.criteria import mrecist
from service.domain.model import AssessmentParameters, LesionState, Response, TimepointReport
from tests.builders import history, lesion, report


def _overall(*reports: TimepointReport, **params: object) -> Response | None:
    assessment = mrecist.assess(history(*reports), AssessmentParameters(**params))  # type: ignore[arg-type]
    return assessment.responses[-1].overall


def _tp(day: str, viable: float | None, long: float = 40) -> TimepointReport:
    if viable is None:
        return report(day, lesion("T1", long, state=LesionState.ABSENT))
    return report(day, lesion("T1", long, viable=viable))


def test_viable_diameter_not_the_whole_lesion_decides() -> None:
    # The lesion keeps its 40 mm but its enhancing part falls from 30 to 21 mm: -30 %.
    assert _overall(_tp("2024-01-01", 30), _tp("2024-03-01", 21)) is Response.PR


def test_no_enhancement_left_is_cr() -> None:
    assert _overall(_tp("2024-01-01", 30), _tp("2024-03-01", 0)) is Response.CR


def test_pd_has_no_5mm_clause_by_default() -> None:
    # 10 -> 12 mm viable: +20 % but only +2 mm.
    assert _overall(_tp("2024-01-01", 10), _tp("2024-03-01", 12)) is Response.PD
    assert _overall(_tp("2024-01-01", 10), _tp("2024-03-01", 12), mrecist_pd_5mm=True) is (
        Response.SD
    )


def test_targets_without_a_viable_diameter_are_not_targets() -> None:
    assessment = mrecist.assess(
        history(report("2024-01-01", lesion("T1", 40)), report("2024-03-01", lesion("T1", 30))),
        AssessmentParameters(),
    )
    assert any("no baseline sum of viable diameters" in w for w in assessment.warnings)
