"""RECIST 1.1 resumed from an earlier fold (recist11.fold_by_size, issue 7): whatever the
earlier fold, the assessment is the one evaluated from scratch; steps whose inputs did
not change are taken, not evaluated again."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

from hypothesis import given, settings, strategies as st

from service.domain.criteria import recist11
from service.domain.model import AssessmentParameters, LesionRole, LesionState, TimepointReport
from tests.builders import history, lesion, report

PARAMS = AssessmentParameters()
FIRST = date(2024, 1, 1)

# A target's long axis in tenths of a millimetre, or None: not assessed.
sizes = st.one_of(
    st.none(), st.just(0), st.integers(min_value=30, max_value=600).map(lambda t: t * 10)
)
# What a new lesion N1 is at a follow-up: absent, equivocal or unequivocal.
new_lesion = st.sampled_from([None, LesionState.EQUIVOCAL, LesionState.PRESENT])
timepoint = st.tuples(st.lists(sizes, min_size=3, max_size=3), new_lesion)


def _report(index: int, found: tuple[list[int | None], LesionState | None]) -> TimepointReport:
    tenths, new = found
    lesions = [
        lesion(
            f"T{n}",
            None if value is None else Decimal(value) / 10,
            state=LesionState.NOT_ASSESSED if value is None else None,
        )
        for n, value in enumerate(tenths, start=1)
    ]
    if new is not None and index:
        lesions.append(lesion("N1", 12, state=new))
    day = (FIRST + timedelta(weeks=8 * index)).isoformat()
    return report(day, *lesions)


def _baseline_measured(reports: list[TimepointReport]) -> list[TimepointReport]:
    """The baseline with every target measured (else it follows as a non-target)."""
    measured = tuple(lesion(f"T{n}", 20 + n) for n in range(1, len(reports[0].lesions) + 1))
    return [replace(reports[0], lesions=measured), *reports[1:]]


def _assessed_one_by_one(
    reports: list[TimepointReport], params: AssessmentParameters = PARAMS
) -> recist11.Fold | None:
    """Each growing prefix of *reports* assessed from the previous prefix's fold, each
    checked against the assessment from scratch; returns the last fold."""
    fold = None
    for end in range(1, len(reports) + 1):
        found = history(*reports[:end])
        assessment, fold = recist11.fold_by_size(found, params, recist11.RULES, fold)
        assert assessment == recist11.assess_by_size(found, params, recist11.RULES)
    return fold


@settings(max_examples=150, deadline=None)
@given(st.lists(timepoint, min_size=2, max_size=9))
def test_appending_timepoints_one_by_one_gives_the_assessment_from_scratch(
    found: list[tuple[list[int | None], LesionState | None]],
) -> None:
    _assessed_one_by_one(_baseline_measured([_report(i, tp) for i, tp in enumerate(found)]))


@settings(max_examples=100, deadline=None)
@given(st.lists(timepoint, min_size=3, max_size=8), st.data())
def test_a_timepoint_inserted_or_replaced_earlier_gives_the_assessment_from_scratch(
    found: list[tuple[list[int | None], LesionState | None]], data: st.DataObject
) -> None:
    reports = _baseline_measured([_report(i, tp) for i, tp in enumerate(found)])
    fold = _assessed_one_by_one(reports)
    where = data.draw(st.integers(min_value=1, max_value=len(reports) - 1))
    other = _report(where, data.draw(timepoint))
    inserted = replace(other, date=reports[where].date - timedelta(days=1))
    for changed in (
        [*reports[:where], inserted, *reports[where:]],  # arrived late
        [*reports[:where], other, *reports[where + 1 :]],  # another reading of that date
    ):
        again = history(*changed)
        assessment, _ = recist11.fold_by_size(again, PARAMS, recist11.RULES, fold)
        assert assessment == recist11.assess_by_size(again, PARAMS, recist11.RULES)


def test_an_appended_timepoint_is_the_only_one_evaluated() -> None:
    reports = [_report(i, ([200 - 10 * i, 150, 100], None)) for i in range(6)]
    earlier = _assessed_one_by_one(reports[:5])
    assert earlier is not None
    _, fold = recist11.fold_by_size(history(*reports), PARAMS, recist11.RULES, earlier)
    assert len(fold.steps) == 5
    assert all(a is b for a, b in zip(fold.steps[:4], earlier.steps, strict=True))
    assert fold.steps[4].day == reports[5].date


def test_equal_content_in_other_objects_is_evaluated_again_with_the_same_result() -> None:
    reports = [_report(i, ([200 - 10 * i, 150, 100], None)) for i in range(4)]
    earlier = _assessed_one_by_one(reports)
    assert earlier is not None
    rebuilt = [_report(i, ([200 - 10 * i, 150, 100], None)) for i in range(4)]
    assessment, fold = recist11.fold_by_size(history(*rebuilt), PARAMS, recist11.RULES, earlier)
    assert not any(a is b for a, b in zip(fold.steps, earlier.steps, strict=True))
    assert fold.steps == earlier.steps
    assert assessment == recist11.assess_by_size(history(*rebuilt), PARAMS, recist11.RULES)


def test_a_fold_of_other_parameters_or_another_baseline_is_not_taken() -> None:
    reports = [_report(i, ([200 - 40 * i, 150, 100], None)) for i in range(4)]
    earlier = _assessed_one_by_one(reports)
    assert earlier is not None
    confirming = AssessmentParameters(confirmation=True)
    rebaselined = [replace(reports[0], lesions=reports[0].lesions[:2]), *reports[1:]]
    for params, changed in ((confirming, reports), (PARAMS, rebaselined)):
        found = history(*changed)
        assessment, fold = recist11.fold_by_size(found, params, recist11.RULES, earlier)
        assert not any(a is b for a, b in zip(fold.steps, earlier.steps, strict=False))
        assert assessment == recist11.assess_by_size(found, params, recist11.RULES)


def test_a_second_report_on_a_date_already_assessed_gives_the_assessment_from_scratch() -> None:
    """Its timepoint then holds the first report's observations and one more: here a
    non-target seen at baseline, so the lesions by role stay the same."""
    reports = [_report(i, ([200 - 10 * i, 150, 100], None)) for i in range(4)]
    non_target = lesion("NT1", role=LesionRole.NON_TARGET, state=LesionState.PRESENT)
    reports[0] = replace(reports[0], lesions=(*reports[0].lesions, non_target))
    earlier = _assessed_one_by_one(reports)
    second_reader = report(reports[2].date.isoformat(), lesion("NT1", state=LesionState.ABSENT))
    second_reader = replace(second_reader, source=replace(second_reader.source, uid="second"))
    found = history(*reports, second_reader)
    assessment, fold = recist11.fold_by_size(found, PARAMS, recist11.RULES, earlier)
    assert assessment == recist11.assess_by_size(found, PARAMS, recist11.RULES)
    assert fold.steps[1] != earlier.steps[1]  # type: ignore[union-attr]  # reports[2]
