"""mRECIST for hepatocellular carcinoma (Lencioni & Llovet, Semin Liver Dis 2010;
criteria.md 8): RECIST 1.1 on the longest *viable* (arterially enhancing) diameter.

Targets are RECIST targets with a viable diameter at baseline; CR is the
disappearance of enhancement in every target (viable diameter 0); PR a >= 30 %
decrease of the viable sum from baseline; PD a >= 20 % increase over the nadir,
with the +5 mm clause only when ``mrecist_pd_5mm`` is set (the published table has
none). Non-target and new-lesion rules are RECIST 1.1's.
"""

from __future__ import annotations

from decimal import Decimal

from service.domain.criteria import recist11
from service.domain.model import (
    Assessment,
    AssessmentParameters,
    History,
    LesionObservation,
    LesionState,
    MeasurementKind,
    TrackedLesion,
)

CRITERION = "mrecist"


def viable_size(lesion: TrackedLesion, observation: LesionObservation | None) -> Decimal | None:
    """The longest viable diameter; 0 when the lesion or its enhancement is gone."""
    if observation is None:
        return None
    if observation.state in (LesionState.ABSENT, LesionState.MERGED):
        return Decimal(0)
    return observation.value(MeasurementKind.VIABLE_LONG_AXIS)


# The published table has no absolute PD clause; ``mrecist_pd_5mm`` adds RECIST's.
_RULES, _RULES_5MM = (
    recist11.SizeRules(
        criterion=CRITERION,
        name="mRECIST",
        size=viable_size,
        pd_min_absolute_mm=pd_min_absolute_mm,
        sum_name="sum of viable diameters",
    )
    for pd_min_absolute_mm in (Decimal(0), recist11.PD_MIN_ABSOLUTE_MM)
)


def rules(params: AssessmentParameters) -> recist11.SizeRules:
    """mRECIST's size rules under *params*: one object per setting, so that a fold
    (recist11.Fold) evaluated under them is taken again."""
    return _RULES_5MM if params.mrecist_pd_5mm else _RULES


def assess(history: History, params: AssessmentParameters) -> Assessment:
    """Apply mRECIST to every timepoint of *history*."""
    return recist11.assess_by_size(history, params, rules(params))
