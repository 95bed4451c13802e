"""Ancillary findings, the advisor and the report commentary (criteria.md 7, 9; issue 3)."""

from __future__ import annotations

import pytest

from service.domain.advisor import merge_settings, recommend
from service.domain.commentary import commentary
from service.domain.criteria import recist11
from service.domain.findings import Sign, chun_group, signs
from service.domain.model import AssessmentParameters, ClinicalSetting, Primary, Therapy
from tests.builders import history, lesion, report


def test_signs_are_read_from_codes_and_project_concepts() -> None:
    observation = lesion(
        "T1", 30, findings={"necrosis": "New", "attenuation": "homogeneous", "chun-group": "2"}
    )
    assert signs(observation) == {
        Sign.NECROSIS: "new",
        Sign.ATTENUATION: "homogeneous",
        Sign.CHUN_GROUP: "2",
    }
    assert chun_group(observation) == 2


@pytest.mark.parametrize(
    ("setting", "criteria"),
    [
        (None, ["recist-1.1"]),
        (ClinicalSetting(Primary.GIST, frozenset({Therapy.TKI})), ["recist-1.1", "choi"]),
        (
            ClinicalSetting(Primary.COLORECTAL, frozenset({Therapy.ANTI_VEGF})),
            ["recist-1.1", "chun"],
        ),
        (
            ClinicalSetting(Primary.BREAST, frozenset({Therapy.IMMUNOTHERAPY})),
            ["recist-1.1", "irecist"],
        ),
        (ClinicalSetting(Primary.HCC), ["recist-1.1", "mrecist"]),
        (ClinicalSetting(Primary.GIST, frozenset({Therapy.CHEMOTHERAPY})), ["recist-1.1"]),
    ],
)
def test_the_advisor_recommends_criteria_for_the_setting(
    setting: ClinicalSetting | None, criteria: list[str]
) -> None:
    assert [r.criterion for r in recommend(setting)] == criteria
    assert all(r.reason for r in recommend(setting))


def test_settings_merge_the_last_primary_and_every_therapy() -> None:
    merged = merge_settings(
        [
            ClinicalSetting(Primary.COLORECTAL, frozenset({Therapy.CHEMOTHERAPY})),
            None,
            ClinicalSetting(None, frozenset({Therapy.ANTI_VEGF})),
        ]
    )
    assert merged == ClinicalSetting(
        Primary.COLORECTAL, frozenset({Therapy.CHEMOTHERAPY, Therapy.ANTI_VEGF})
    )
    assert merge_settings([None, None]) is None


def _lines(follow_size: float, findings: dict[str, str]) -> tuple[str, ...]:
    built = history(
        report("2024-01-01", lesion("T1", 50)),
        report("2024-03-01", lesion("T1", follow_size, findings=findings)),
    )
    assessment = recist11.assess(built, AssessmentParameters())
    day = built.timepoints[1].date
    return commentary(built, [assessment], day, recommend(None))


def test_sd_with_small_change_and_signs_of_response_is_a_possible_responder() -> None:
    lines = _lines(48, {"necrosis": "new", "calcification": "absent"})
    assert any(line.startswith("Ancillary findings") and "necrosis new" in line for line in lines)
    flag = next(line for line in lines if line.startswith("Possible responder"))
    assert "-4 %" in flag and "Choi" in flag and "Chun" in flag
    assert "calcification" not in flag


@pytest.mark.parametrize(
    ("size", "findings"),
    [
        (48, {"necrosis": "absent"}),  # no sign of response
        (38, {"necrosis": "new"}),  # -24 %: not a small change
        (34, {"necrosis": "new"}),  # PR already
    ],
)
def test_no_possible_responder_flag(size: float, findings: dict[str, str]) -> None:
    assert not any(line.startswith("Possible responder") for line in _lines(size, findings))


def test_ancillary_findings_never_change_the_category() -> None:
    plain = history(report("2024-01-01", lesion("T1", 50)), report("2024-03-01", lesion("T1", 48)))
    signs_ = history(
        report("2024-01-01", lesion("T1", 50)),
        report("2024-03-01", lesion("T1", 48, findings={"necrosis": "new", "fibrosis": "new"})),
    )
    params = AssessmentParameters()
    assert (
        recist11.assess(plain, params).responses[-1].overall
        is recist11.assess(signs_, params).responses[-1].overall
    )
