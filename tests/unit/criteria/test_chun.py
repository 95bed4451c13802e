"""Chun morphologic criteria (criteria.md 7)."""

from __future__ import annotations

import pytest

from service.domain.criteria import chun
from service.domain.model import AssessmentParameters, Response, TimepointReport
from tests.builders import history, lesion, report

OPTIMAL, PARTIAL, ABSENT = chun.OPTIMAL, chun.PARTIAL, chun.ABSENT


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (3, 1, OPTIMAL),
        (2, 1, OPTIMAL),
        (3, 2, PARTIAL),
        (1, 1, ABSENT),
        (2, 2, ABSENT),
        (3, 3, ABSENT),
        (2, 3, ABSENT),
        (1, 2, ABSENT),
    ],
)
def test_lesion_response_table(before: int, after: int, expected: Response) -> None:
    assert chun.lesion_response(before, after) is expected


def _tp(day: str, *groups: int) -> TimepointReport:
    return report(
        day,
        *(
            lesion(f"T{i}", 30, findings={"chun-group": str(group)})
            for i, group in enumerate(groups, 1)
        ),
    )


def _overall(*reports: TimepointReport, policy: str = "worst") -> Response | None:
    params = AssessmentParameters(chun_patient_policy=policy)
    return chun.assess(history(*reports), params).responses[-1].overall


def test_patient_level_worst_lesion_rule() -> None:
    assert _overall(_tp("2024-01-01", 3, 3), _tp("2024-03-01", 1, 1)) is OPTIMAL
    assert _overall(_tp("2024-01-01", 3, 3), _tp("2024-03-01", 1, 2)) is PARTIAL
    assert _overall(_tp("2024-01-01", 3, 3), _tp("2024-03-01", 1, 3)) is ABSENT


def test_patient_level_majority_rule() -> None:
    base, follow = _tp("2024-01-01", 3, 3, 3), _tp("2024-03-01", 1, 1, 3)
    assert _overall(base, follow, policy="majority") is OPTIMAL
    assert _overall(base, follow) is ABSENT


def test_the_group_is_derived_from_its_features() -> None:
    base = report(
        "2024-01-01",
        lesion(
            "T1",
            30,
            findings={"attenuation": "inhomogeneous", "tumour-liver-interface": "ill-defined"},
        ),
    )
    follow = report(
        "2024-03-01",
        lesion(
            "T1",
            28,
            findings={
                "attenuation": "homogeneous",
                "tumour-liver-interface": "sharp",
                "peripheral-rim": "resolved",
            },
        ),
    )
    assert _overall(base, follow) is OPTIMAL


def test_no_group_at_baseline_is_not_evaluable_with_a_warning() -> None:
    assessment = chun.assess(
        history(report("2024-01-01", lesion("T1", 30)), report("2024-03-01", lesion("T1", 28))),
        AssessmentParameters(),
    )
    assert assessment.responses[-1].overall is Response.NE
    assert any("no lesion has a Chun" in w for w in assessment.warnings)


def test_group_1_at_baseline_is_flagged_uninformative() -> None:
    assessment = chun.assess(
        history(_tp("2024-01-01", 1), _tp("2024-03-01", 1)), AssessmentParameters()
    )
    assert any("uninformative" in w for w in assessment.warnings)


def test_best_morphologic_response_so_far() -> None:
    reports = [_tp("2024-01-01", 3), _tp("2024-03-01", 1), _tp("2024-05-01", 3)]
    responses = chun.assess(history(*reports), AssessmentParameters()).responses
    assert [r.overall for r in responses[1:]] == [OPTIMAL, ABSENT]
    assert responses[-1].best_overall is OPTIMAL
