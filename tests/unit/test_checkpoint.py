"""A patient's assessment resumed from a checkpoint (service.domain.checkpoint, issue 7):
the history of the earlier reports settled (history.settled_history), then resumed with
later ones (history.resume_history), and each size-based fold resumed with the new
timepoints alone (recist11.resume_by_size), is what the whole history gives, whatever
the reports: several on one date, declared roles, labels, unlabelled lesions, nodes,
new lesions, clinical settings."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

from hypothesis import given, settings, strategies as st

from service.domain.criteria import mrecist, recist11
from service.domain.history import resume_history, settled_history
from service.domain.model import (
    AssessmentParameters,
    ClinicalSetting,
    LesionObservation,
    LesionRole,
    LesionState,
    Primary,
    SourceDocument,
    Therapy,
    TimepointReport,
)
from tests.builders import LUNG, lesion, node, report, tp

FIRST = date(2024, 1, 1)

# Lesions by label: a declared role or none, a site, a Tracking UID or none.
_POOL = ("T1", "T2", "NT1", "N1", "L1", "L2", "node A", "T3")


def _observation(
    label: str,
    size: int,
    role: LesionRole | None,
    state: LesionState | None,
    uid: str | None,
    lung: bool,
) -> LesionObservation:
    if label == "node A":
        return node(label, short=size, uid=uid)
    if lung:
        return lesion(label, size, role=role, state=state, uid=uid, site=LUNG)
    return lesion(label, size, role=role, state=state, uid=uid)


observation = st.builds(
    _observation,
    st.sampled_from(_POOL),
    st.integers(min_value=3, max_value=80),
    st.sampled_from([None, None, LesionRole.TARGET, LesionRole.NON_TARGET, LesionRole.NEW]),
    st.sampled_from([None, None, None, LesionState.EQUIVOCAL, LesionState.ABSENT]),
    st.sampled_from([None, None, "2.25.1", "2.25.2"]),
    st.booleans(),
)
setting = st.one_of(
    st.none(),
    st.builds(
        ClinicalSetting,
        st.sampled_from([None, *Primary]),
        st.frozensets(st.sampled_from(list(Therapy)), max_size=2),
    ),
)
# One report: its lesions and setting. Reports of one date are merged.
one_report = st.tuples(st.lists(observation, min_size=0, max_size=4), setting)
# Each date's reports (one or two), dates eight weeks apart.
timepoints = st.lists(st.lists(one_report, min_size=1, max_size=2), min_size=2, max_size=6)

PARAMS = (AssessmentParameters(), AssessmentParameters(mrecist_pd_5mm=True, confirmation=True))
SIZE_RULES = (lambda _p: recist11.RULES, mrecist.rules)


def _reports(
    found: list[list[tuple[list[LesionObservation], ClinicalSetting | None]]],
) -> list[TimepointReport]:
    reports: list[TimepointReport] = []
    for index, same_day in enumerate(found):
        day = (FIRST + timedelta(weeks=8 * index)).isoformat()
        for n, (lesions, chosen) in enumerate(same_day):
            made = report(day, *lesions)
            source = SourceDocument(f"{day}-{n}", "test", preliminary=n == 1)
            reports.append(replace(made, source=source, setting=chosen))
    return reports


@settings(max_examples=150, deadline=None)
@given(timepoints)
def test_a_resumed_history_and_its_folds_equal_those_of_every_report(found) -> None:
    reports = _reports(found)
    whole, settled_whole = settled_history(reports)
    days = sorted({r.date for r in reports})
    for last in days[:-1]:
        earlier = [r for r in reports if r.date <= last]
        later = [r for r in reports if r.date > last]
        before, settled = settled_history(earlier)
        resumed = resume_history(settled, later)
        assert resumed is not None
        history, settled_again = resumed
        assert list(history.lesions.items()) == list(whole.lesions.items())
        assert history.warnings == whole.warnings
        assert history.setting == whole.setting
        assert history.timepoints == (
            whole.timepoints[0],
            *(timepoint for timepoint in whole.timepoints if timepoint.date > last),
        )
        assert settled_again == settled_whole
        assert list(settled_again.first_seen) == list(settled_whole.first_seen)
        for params in PARAMS:
            for rules in (make(params) for make in SIZE_RULES):
                _, fold = recist11.fold_by_size(before, params, rules)
                expected, expected_fold = recist11.fold_by_size(whole, params, rules)
                again = recist11.resume_by_size(history, params, fold)
                if again is None:  # only when the context the steps were taken in changed
                    assert (fold.disease, fold.baseline_sum) != (
                        expected_fold.disease,
                        expected_fold.baseline_sum,
                    )
                    continue
                assert again[0] == expected
                assert again[1].steps[: len(fold.steps)] == fold.steps


def test_reports_at_or_before_the_last_settled_date_are_not_resumed() -> None:
    _, settled = settled_history([tp("2024-01-01", 30), tp("2024-03-01", 28)])
    assert resume_history(settled, [tp("2024-03-01", 20)]) is None
    assert resume_history(settled, [tp("2024-02-01", 20), tp("2024-05-01", 20)]) is None
    assert resume_history(settled, []) is None


def test_a_fold_of_other_parameters_is_not_resumed() -> None:
    earlier, settled = settled_history([tp("2024-01-01", 30)])
    _, fold = recist11.fold_by_size(earlier, AssessmentParameters(), mrecist.rules(PARAMS[0]))
    resumed = resume_history(settled, [tp("2024-03-01", 20)])
    assert resumed is not None
    assert recist11.resume_by_size(resumed[0], PARAMS[1], fold) is None
