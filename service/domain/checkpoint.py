"""What an assessment keeps of a patient to resume from (issue 7, history growth;
performance.md 6.4: "store each timepoint's sum, baseline and nadir when it is
evaluated, and evaluate the new timepoint incrementally").

A :class:`Checkpoint` is the patient's settled history (:class:`~service.domain.history.
Settled`) and the fold of each size-based criterion assessed on it. A later report
dated after its last timepoint is assessed from it alone: the history is resumed
(``history.resume_history``) and each fold evaluates the new timepoints only
(``recist11.resume_by_size``). Anything else (a report of an earlier date, another
criterion, other parameters, a changed disease) is assessed from all the reports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from service.domain.criteria import mrecist, recist11
from service.domain.history import Settled
from service.domain.model import AssessmentParameters

# The criteria assessed by recist11.fold_by_size, with their size rules under the
# parameters given.
SIZE_RULES: dict[str, Callable[[AssessmentParameters], recist11.SizeRules]] = {
    recist11.CRITERION: lambda _params: recist11.RULES,
    mrecist.CRITERION: mrecist.rules,
}


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A patient's settled history and the folds of its size-based criteria, by name."""

    settled: Settled
    folds: dict[str, recist11.Fold]
