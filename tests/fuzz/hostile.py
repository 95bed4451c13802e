"""A TID 1500 report with one hostile value: an absurd number or a hostile string
(reliability.md section 6, "absurd values, hostile UIDs and strings")."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

from pydicom.dataset import Dataset

from tests.sr_factory import LesionSpec, make_sr, sr_bytes


def report() -> Dataset:
    """A one-target-lesion report (long axis 21 mm) to make hostile."""
    return make_sr(
        patient_id="HOSTILE", study_date="20240105", lesions=[LesionSpec("T1", 21, role="target")]
    )


def _nums(item: Dataset) -> Iterator[Dataset]:
    for child in item.get("ContentSequence") or ():
        if child.ValueType == "NUM":
            yield child
        yield from _nums(child)


def with_value(value: str) -> bytes:
    """The report with its long axis NumericValue (DS) set to *value*."""
    dataset = report()
    with warnings.catch_warnings():  # pydicom warns on invalid DS values; they are the point
        warnings.simplefilter("ignore")
        next(_nums(dataset)).MeasuredValueSequence[0].NumericValue = value
        return sr_bytes(dataset)


def with_attribute(keyword: str, value: Any) -> bytes:
    """The report with the top-level attribute *keyword* set to *value*."""
    dataset = report()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        setattr(dataset, keyword, value)
        if keyword == "SOPInstanceUID":
            dataset.file_meta.MediaStorageSOPInstanceUID = value
        return sr_bytes(dataset)
