"""The parts of the use-case layer (service/services.py) that need no database."""

from __future__ import annotations

from datetime import date

from service.domain.model import DEFAULT_PATIENT_SYSTEM, PatientIdentity
from service.services import Change, Tally, fresh_attempt

PATIENT = PatientIdentity(DEFAULT_PATIENT_SYSTEM, "P-1")


def test_a_retried_attempt_forgets_what_the_rolled_back_one_noted_and_keeps_earlier_counts():
    tally = Tally(new=2, redelivered=1, verdicts=[("recist-1.1", "PR")])  # an earlier entry
    changed: list[Change] = []
    forget = fresh_attempt(changed, tally)
    # the first attempt notes its work, then its transaction rolls back
    tally.new += 1
    tally.verdicts.append(("recist-1.1", "PD"))
    changed.append(("default", PATIENT, date(2024, 3, 1)))
    forget()
    assert (tally.new, tally.redelivered, tally.verdicts, changed) == (
        2,
        1,
        [("recist-1.1", "PR")],
        [],
    )


def test_without_a_tally_only_the_changes_are_forgotten():
    changed: list[Change] = [("default", PATIENT, date(2024, 3, 1))]
    fresh_attempt(changed, None)()
    assert changed == []
