"""The running best overall responses equal the best overall response of every prefix,
evaluated from scratch as criteria.md 3.9 reads (the reference functions below)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import date, timedelta

import pytest
from hypothesis import given, settings, strategies as st

from service.domain.criteria import irecist, recist11
from service.domain.model import AssessmentParameters, Response, TimepointResponse

BASELINE = date(2024, 1, 1)
RECIST = (Response.CR, Response.PR, Response.SD, Response.PD, Response.NE, Response.NON_CR_NON_PD)
IRECIST = (
    Response.ICR,
    Response.IPR,
    Response.ISD,
    Response.IUPD,
    Response.ICPD,
    Response.NE,
    Response.NON_ICR_NON_IUPD,
)
_SD_CLASS = (Response.CR, Response.PR, Response.SD, Response.NON_CR_NON_PD)
_STABLE = (Response.ICR, Response.IPR, Response.ISD, Response.NON_ICR_NON_IUPD)


def reference_recist(
    responses: Sequence[TimepointResponse], params: AssessmentParameters
) -> Response:
    """RECIST 1.1 best overall response of *responses*, from scratch (criteria.md 3.9)."""
    considered: list[TimepointResponse] = []
    for response in responses:
        considered.append(response)
        if response.overall is Response.PD:
            break
    overall = [r.overall for r in considered]
    if params.confirmation:
        if _confirmed(considered, Response.CR, (Response.CR,), params):
            return Response.CR
        if _confirmed(considered, Response.PR, (Response.PR, Response.CR), params):
            return Response.PR
    else:
        for category in (Response.CR, Response.PR):
            if category in overall:
                return category
    lasting = _lasting(considered, _SD_CLASS, params)
    if lasting:
        only_non_cr = all(o is Response.NON_CR_NON_PD for o in lasting)
        return Response.NON_CR_NON_PD if only_non_cr else Response.SD
    if Response.PD in overall:
        return Response.PD
    return Response.NE


def _lasting(
    responses: Sequence[TimepointResponse],
    stable: tuple[Response, ...],
    params: AssessmentParameters,
) -> list[Response | None]:
    """The stable responses at least the minimum SD duration after baseline."""
    return [
        r.overall
        for r in responses
        if r.overall in stable and (r.date - BASELINE).days >= params.sd_min_days
    ]


def _confirmed(
    responses: Sequence[TimepointResponse],
    first: Response,
    confirming: tuple[Response, ...],
    params: AssessmentParameters,
) -> bool:
    allowed_between = (*confirming, Response.NE)
    for i, start in enumerate(responses):
        if start.overall is not first and not (
            first is Response.PR and start.overall is Response.CR
        ):
            continue
        for later in responses[i + 1 :]:
            if later.overall not in allowed_between:
                break
            if (
                later.overall in confirming
                and (later.date - start.date).days >= params.confirm_min_days
            ):
                return True
    return False


def reference_irecist(
    responses: Sequence[TimepointResponse], params: AssessmentParameters
) -> Response:
    """iBOR of *responses*, from scratch (Seymour Table 3)."""
    before: list[TimepointResponse] = []
    for response in responses:
        if response.overall is Response.ICPD:
            break
        before.append(response)
    overall = [r.overall for r in before]
    for category in (Response.ICR, Response.IPR):
        if category in overall:
            return category
    lasting = _lasting(before, _STABLE, params)
    if lasting:
        if all(o is Response.NON_ICR_NON_IUPD for o in lasting):
            return Response.NON_ICR_NON_IUPD
        return Response.ISD
    if len(before) < len(responses):
        return Response.ICPD
    if Response.IUPD in overall:
        return Response.IUPD
    return Response.NE


def _timepoints(overalls: Sequence[Response], gaps: Sequence[int]) -> list[TimepointResponse]:
    days = itertools.accumulate(gaps, initial=0)
    return [
        TimepointResponse(date=BASELINE + timedelta(days=day), overall=overall, sums=None)
        for overall, day in zip(overalls, itertools.islice(days, 1, None), strict=True)
    ]


def _check(overalls: Sequence[Response], gaps: Sequence[int], params: AssessmentParameters) -> None:
    responses = _timepoints(overalls, gaps)
    on_study = [TimepointResponse(date=BASELINE, overall=None, sums=None), *responses]
    if all(o in RECIST for o in overalls):
        running = recist11.with_best_overall(on_study, params)
        expected = [reference_recist(responses[: n + 1], params) for n in range(len(responses))]
        assert [r.best_overall for r in running[1:]] == expected
        assert recist11.best_overall_response(responses, BASELINE, params) is expected[-1]
    if all(o in IRECIST for o in overalls):
        running = recist11.with_best_overall(on_study, params, irecist.best_overall_responses)
        expected = [reference_irecist(responses[: n + 1], params) for n in range(len(responses))]
        assert [r.best_overall for r in running[1:]] == expected


PARAMS = [
    AssessmentParameters(confirmation=confirmation, confirm_min_days=confirm, sd_min_days=sd)
    for confirmation in (False, True)
    for confirm, sd in ((28, 42), (0, 0), (56, 14))
]


@pytest.mark.parametrize("params", PARAMS)
@pytest.mark.parametrize("length", [1, 2, 3, 4])
def test_every_short_recist_sequence_matches_the_reference(
    params: AssessmentParameters, length: int
) -> None:
    for overalls in itertools.product(RECIST, repeat=length):
        _check(overalls, [14] * length, params)
        _check(overalls, [30, 7, 21, 35, 2][:length], params)


@pytest.mark.parametrize("params", PARAMS)
def test_every_short_irecist_sequence_matches_the_reference(params: AssessmentParameters) -> None:
    for length in (1, 2, 3):
        for overalls in itertools.product(IRECIST, repeat=length):
            _check(overalls, [30, 7, 21, 35][:length], params)


def test_an_empty_history_has_no_best_response() -> None:
    assert recist11.best_overall_response([], BASELINE, AssessmentParameters()) is Response.NE


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(st.sampled_from(RECIST + IRECIST), st.integers(min_value=0, max_value=60)),
        min_size=1,
        max_size=25,
    ),
    st.booleans(),
    st.integers(min_value=0, max_value=90),
    st.integers(min_value=0, max_value=90),
)
def test_long_sequences_match_the_reference(
    steps: list[tuple[Response, int]], confirmation: bool, confirm: int, sd: int
) -> None:
    params = AssessmentParameters(
        confirmation=confirmation, confirm_min_days=confirm, sd_min_days=sd
    )
    overalls = [overall for overall, _gap in steps]
    gaps = [gap for _overall, gap in steps]
    for family in (RECIST, IRECIST):
        # The same gaps, the responses mapped into one criterion's categories.
        mapped = [family[(RECIST + IRECIST).index(o) % len(family)] for o in overalls]
        _check(mapped, gaps, params)
