"""Sums of diameters, percent changes, size thresholds and how numbers are shown
(criteria.md 2 and 3.3); used by the criteria and by whatever reports them.

Exact decimal arithmetic throughout; thresholds are compared by cross-multiplying
so a zero nadir never divides (criteria.md section 2, "Inequalities").
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from decimal import Decimal

from service.domain.model import LesionObservation, LesionState, TrackedLesion

TOO_SMALL_TO_MEASURE_MM = Decimal(5)  # RECIST 1.1 (criteria.md 3.2)
HUNDRED = Decimal(100)
_DISPLAY = Decimal("0.01")


def lesion_size(lesion: TrackedLesion, observation: LesionObservation | None) -> Decimal | None:
    """What a target contributes to the sum at one timepoint, or None if unknown.

    Nodes contribute their short axis even below 10 mm, other lesions their longest
    diameter (fragments summed); disappeared or merged lesions 0, "too small to
    measure" 5 mm; not assessed or not reported is missing, never 0 (criteria.md 3.2).
    """
    if observation is None:
        return None
    state = observation.state
    if state in (LesionState.ABSENT, LesionState.MERGED):
        return Decimal(0)
    measured = observation.short_axis_mm if lesion.is_nodal else observation.long_axis_mm
    if measured is not None:
        return measured
    if state is LesionState.TOO_SMALL_TO_MEASURE:
        return TOO_SMALL_TO_MEASURE_MM
    return None


def total(values: Iterable[Decimal]) -> Decimal:
    return sum(values, Decimal(0))


def percent_change(value: Decimal, reference: Decimal) -> Decimal | None:
    """(value - reference) / reference in percent; None from a zero reference."""
    if reference == 0:
        return None
    return (value - reference) * HUNDRED / reference


def at_least_percent_above(value: Decimal, reference: Decimal, percent: int) -> bool:
    """value >= reference * (1 + percent/100), without dividing."""
    return (value - reference) * HUNDRED >= percent * reference


def at_least_percent_below(value: Decimal, reference: Decimal, percent: int) -> bool:
    """value <= reference * (1 - percent/100), without dividing."""
    return (reference - value) * HUNDRED >= percent * reference


@functools.lru_cache(maxsize=4096)  # every past timepoint's explanation shows its sums again
def display(value: Decimal | None) -> str:
    """A number for people: two decimals at most, no trailing zeros."""
    if value is None:
        return "n/a"
    text = format(value.quantize(_DISPLAY).normalize(), "f")
    return "0" if text in ("-0", "0") else text
