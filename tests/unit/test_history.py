"""Building a patient's history: lesion identity, roles, timepoints (contract 3)."""

from __future__ import annotations

import pytest

from service.domain.errors import InvalidInput, NotEvaluable
from service.domain.history import build_history, role_from_label
from service.domain.model import LesionIdentity, LesionRole
from tests.builders import LUNG, history, lesion, node, report


@pytest.mark.parametrize(
    ("label", "role"),
    [
        ("T1", LesionRole.TARGET),
        ("target 2", LesionRole.TARGET),
        ("NT1", LesionRole.NON_TARGET),
        ("Non-target 3", LesionRole.NON_TARGET),
        ("N1", LesionRole.NEW),
        ("New 1", LesionRole.NEW),
        ("Liver lesion", None),
        ("cornerstoneTools@^4.0.0:Length", None),
        (None, None),
    ],
)
def test_role_from_label(label: str | None, role: LesionRole | None) -> None:
    assert role_from_label(label) is role


def test_a_lesion_needs_an_identity() -> None:
    with pytest.raises(InvalidInput):
        LesionIdentity()


def test_labels_link_lesions_when_a_viewer_regenerates_uids() -> None:
    built = history(
        report("2024-01-01", lesion("T1", 30, uid="1.2.3.1")),
        report("2024-03-01", lesion("t1", 20, uid="1.2.3.99")),
    )
    assert len(built.lesions) == 1
    assert [list(tp.observations) for tp in built.timepoints] == [["1.2.3.1"], ["1.2.3.1"]]


def test_a_label_repeated_within_one_timepoint_does_not_merge_lesions() -> None:
    built = history(
        report(
            "2024-01-01",
            lesion("Bidirectional", 30, uid="1.1"),
            lesion("Bidirectional", 20, uid="1.2"),
        )
    )
    assert len(built.lesions) == 2


def test_the_uid_wins_over_the_label() -> None:
    built = history(
        report("2024-01-01", lesion("T1", 30, uid="1.1"), lesion("T2", 20, uid="1.2")),
        report("2024-03-01", lesion("T2", 25, uid="1.1"), lesion("T1", 15, uid="1.2")),
    )
    second = built.timepoints[1].observations
    assert second["1.1"].long_axis_mm == 25


def test_lesions_first_seen_after_baseline_are_new_even_if_labelled_target() -> None:
    built = history(
        report("2024-01-01", lesion("T1", 30)),
        report("2024-03-01", lesion("T1", 30), lesion("T2", 12)),
    )
    assert built.lesions["label:T2"].role is LesionRole.NEW
    assert any("first seen after baseline" in warning for warning in built.warnings)


def test_targets_are_selected_by_size_with_two_per_organ_when_no_roles_are_given() -> None:
    built = history(
        report(
            "2024-01-01",
            lesion("a", 50),
            lesion("b", 40),
            lesion("c", 60),  # third liver lesion: non-target
            lesion("d", 15, site=LUNG),
            lesion("e", 8, site=LUNG),  # under 10 mm: not measurable
            node("f", 16),
            node("g", 12),  # 10-15 mm node: non-target
            node("h", 8),  # normal node: not a lesion
        )
    )
    roles = {key.removeprefix("label:"): lesion.role for key, lesion in built.lesions.items()}
    assert roles == {
        "a": LesionRole.TARGET,
        "b": LesionRole.NON_TARGET,
        "c": LesionRole.TARGET,
        "d": LesionRole.TARGET,
        "e": LesionRole.NON_TARGET,
        "f": LesionRole.TARGET,
        "g": LesionRole.NON_TARGET,
        "h": LesionRole.NON_LESION,
    }
    assert any("selected by RECIST 1.1 rules" in warning for warning in built.warnings)


def test_reports_of_one_date_form_one_timepoint_in_date_order() -> None:
    built = build_history(
        [
            report("2024-03-01", lesion("T1", 20)),
            report("2024-01-01", lesion("T1", 30)),
            report("2024-01-01", lesion("T2", 10)),
        ]
    )
    assert [str(tp.date) for tp in built.timepoints] == ["2024-01-01", "2024-03-01"]
    assert len(built.timepoints[0].observations) == 2


def test_no_reports_is_not_evaluable() -> None:
    with pytest.raises(NotEvaluable):
        build_history([])


def test_a_lesion_labelled_new_at_baseline_is_a_non_target() -> None:
    built = history(report("2024-01-01", lesion("T1", 30), lesion("New 1", 12)))
    assert built.lesions["label:New 1"].role is LesionRole.NON_TARGET
    assert any("where nothing is new" in warning for warning in built.warnings)


def test_two_sources_on_one_date_add_up_for_one_lesion() -> None:
    built = build_history(
        [
            report("2024-01-01", lesion("T1", 30)),
            report("2024-01-01", lesion("T1", hu=80, findings={"necrosis": "present"})),
        ]
    )
    (observation,) = built.timepoints[0].observations.values()
    assert observation.long_axis_mm == 30
    assert observation.findings[0].value == "present"
    assert len(observation.measurements) == 2
    assert not built.warnings


def test_the_later_source_wins_for_the_same_value_and_says_so() -> None:
    built = build_history(
        [report("2024-01-01", lesion("T1", 30)), report("2024-01-01", lesion("T1", 32))]
    )
    (observation,) = built.timepoints[0].observations.values()
    assert observation.long_axis_mm == 32
    assert any("reported twice" in warning for warning in built.warnings)
