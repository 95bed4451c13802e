"""Pickles of the domain model (service/entrypoints/model_pickle.py): what loads is the
object pickled, field by field (derived fields included), made without its
dataclass's ``__post_init__`` or ``__setstate__``; other objects pickle as usual."""

from __future__ import annotations

import dataclasses
import pickle  # nosec B403
from decimal import Decimal
from pathlib import Path

import pytest

from service.domain.criteria import recist11
from service.domain.errors import InvalidInput
from service.domain.model import (
    AssessmentParameters,
    ClinicalSetting,
    LesionObservation,
    Measurement,
    MeasurementKind,
    Primary,
    Therapy,
)
from service.entrypoints import model_pickle, read_process
from tests.builders import history, tp
from tests.sr_factory import LesionSpec, make_sr, sr_bytes

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "sr"


def _slots(value: object) -> object:
    """*value* with every field of every model object spelled out, those left out of
    comparisons (a lesion's derived axes) too."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.fields(value)
        return (type(value), tuple((f.name, _slots(getattr(value, f.name))) for f in fields))
    if isinstance(value, tuple | list):
        return type(value)(map(_slots, value))
    if isinstance(value, dict):
        return {key: _slots(item) for key, item in value.items()}
    return value


def _round_trip(value: object) -> object:
    return pickle.loads(model_pickle.dumps(value))  # nosec B301


def _read_reports() -> list[object]:
    made = make_sr(
        patient_id="MP-1",
        study_date="20240105",
        lesions=[
            LesionSpec("T1", 23.5, role="target", findings=(("necrosis", "new"),)),
            LesionSpec("N1", 15.0, 11.0, role="target", site="lymph node"),
            LesionSpec("T2", 12.0, role="target", frame_of_reference_uid="1.2.3.4"),
        ],
    )
    bodies = [sr_bytes(made), *(path.read_bytes() for path in sorted(SAMPLES.glob("*sr*.dcm")))]
    return [read_process.read_dicom(body, "urn:example:mrn") for body in bodies]


def test_a_read_report_loads_as_it_was_pickled_field_by_field() -> None:
    read = _read_reports()
    loaded = [_round_trip(inbound) for inbound in read]
    assert loaded == read
    assert [_slots(found) for found in loaded] == [_slots(found) for found in read]
    made = loaded[0].report.lesions  # type: ignore[attr-defined]
    assert [(lesion.long_axis_mm, lesion.short_axis_mm) for lesion in made] == [
        (Decimal("23.5"), None),
        (Decimal("15.0"), Decimal("11.0")),
        (Decimal("12.0"), None),
    ]


def test_histories_and_assessments_load_as_they_were_pickled() -> None:
    patient = history(tp("2024-01-01", 30, 20), tp("2024-03-01", 20, 10), tp("2024-05-01", 40, 25))
    assessment = recist11.assess(patient, AssessmentParameters())
    setting = ClinicalSetting(Primary.COLORECTAL, frozenset({Therapy.ANTI_VEGF}))
    for value in (patient, assessment, setting):
        assert _slots(_round_trip(value)) == _slots(value)


def test_objects_load_without_running_their_checks_again() -> None:
    measurement = Measurement(MeasurementKind.LONG_AXIS, Decimal("12.5"))
    blob = model_pickle.dumps(measurement)
    original = Measurement.__post_init__
    try:
        Measurement.__post_init__ = lambda self: pytest.fail("checked again")  # type: ignore[method-assign]
        assert pickle.loads(blob) == measurement  # nosec B301
    finally:
        Measurement.__post_init__ = original  # type: ignore[method-assign]
    with pytest.raises(InvalidInput):  # what the reader's objects passed when made
        Measurement(MeasurementKind.LONG_AXIS, Decimal(-1))


def test_every_dataclass_of_the_model_has_a_builder_and_others_pickle_as_usual() -> None:
    assert LesionObservation in model_pickle.MODEL_CLASSES
    for cls in model_pickle.MODEL_CLASSES:
        assert getattr(model_pickle, f"_build_{cls.__name__}").__module__ == model_pickle.__name__
    error = InvalidInput("no lesion", expression="x")
    loaded = _round_trip(("error", error, {"a": [Decimal("1.5"), complex(1, 2)]}))
    assert loaded[0] == "error" and type(loaded[1]) is InvalidInput  # type: ignore[index]
    assert str(loaded[1]) == "no lesion" and loaded[2] == {"a": [Decimal("1.5"), complex(1, 2)]}  # type: ignore[index]
