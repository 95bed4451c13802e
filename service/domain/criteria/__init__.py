"""Tumour-response criteria. Each module exposes ``assess(history, params) -> Assessment``."""

from __future__ import annotations

from collections.abc import Callable

from service.domain.criteria import choi, chun, irecist, mrecist, recist11
from service.domain.model import Assessment, AssessmentParameters, History

Assess = Callable[[History, AssessmentParameters], Assessment]

CRITERIA: dict[str, Assess] = {
    recist11.CRITERION: recist11.assess,
    irecist.CRITERION: irecist.assess,
    choi.CRITERION: choi.assess,
    choi.MODIFIED_CRITERION: choi.assess_modified,
    chun.CRITERION: chun.assess,
    mrecist.CRITERION: mrecist.assess,
}
