"""One SR instance checked and read as STOW-RS and C-STORE read it, and why one is
refused (reliability.md section 4): light enough for the SR reader process
(:mod:`.sr_reader_process`), which imports nothing of the storage.

:func:`read_checked` runs the edge checks in order, each with its own condition, then
the reader; :class:`InstanceRefused` carries the :class:`Condition`, which maps through
the one table :data:`STATUSES` to the STOW-RS Failure Reason (PS3.18 Table I.2-2) and
the C-STORE Status (PS3.4 Table B.2-1). :func:`read_parts` reads without those checks,
raising the reader's own errors (``POST /assessments``). :mod:`.dicom_status` makes the
instance to store of what they read.

The ``0xC1xx`` values are implementation-specific ("Cannot understand" family, PS3.18
I.2.2 allows them when the conformance statement lists them; the README does). They
avoid the standard ``C122`` and pynetdicom's own ``C001``, ``C002``, ``C210``, ``C211``.

A Basic Text SR (1.2.840.10008.5.1.4.1.1.88.11) is accepted at association (contract
section 2) but cannot hold TID 1500 numeric content (interop.md 1.9), so its content is
refused with ``0xC110`` "template not supported", on both transports.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from io import BytesIO
from typing import Any, Final

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import BasicTextSRStorage

from service.adapters import sr_context, sr_reader
from service.domain.errors import (
    DomainError,
    InvalidInput,
    TooCostly,
    TooLarge,
    UnsupportedInput,
)
from service.domain.model import TimepointReport

# A report, where its data set starts in the bytes read (what its digest covers: not
# the File Meta Information, which each sender writes its own), its DICOM context.
Parts = tuple[TimepointReport, int, dict[str, Any]]


class Condition(Enum):
    """Why an instance was not stored."""

    CANNOT_UNDERSTAND = "not readable DICOM Part 10"
    LIMIT = "decoded size or structure limit exceeded"
    TEMPLATE = "SR template not supported"
    CONTENT = "TID 1500 content invalid"
    STUDY_MISMATCH = "StudyInstanceUID differs from the one in the URL"
    CONFLICT = "same SOP Instance UID, different content"
    IDENTITY_CONFLICT = "study known under another patient"
    SOP_CLASS = "SOP Class not supported"
    META_MISMATCH = "File Meta Information does not match the data set"
    RESOURCES = "out of resources"
    PROCESSING = "processing failure"


@dataclass(frozen=True, slots=True)
class Status:
    """The codes of one condition on each transport."""

    failure_reason: int  # STOW-RS FailureReason (0008,1197)
    cstore: int  # C-STORE Status (0000,0900)


# The one table (reliability.md section 4). C-STORE never sees STUDY_MISMATCH (no URL).
STATUSES: Final[dict[Condition, Status]] = {
    Condition.CANNOT_UNDERSTAND: Status(0xC100, 0xC100),
    Condition.LIMIT: Status(0xC101, 0xC101),
    Condition.TEMPLATE: Status(0xC110, 0xC110),
    Condition.CONTENT: Status(0xC111, 0xC111),
    Condition.STUDY_MISMATCH: Status(0xC112, 0xC112),
    Condition.CONFLICT: Status(0xC120, 0xC120),
    Condition.IDENTITY_CONFLICT: Status(0xC121, 0xC121),
    Condition.SOP_CLASS: Status(0x0122, 0x0122),
    Condition.META_MISMATCH: Status(0xA900, 0xA900),
    Condition.RESOURCES: Status(0xA700, 0xA700),
    Condition.PROCESSING: Status(0x0110, 0x0110),
}


class InstanceRefused(Exception):
    """One instance was not stored; :attr:`condition` says why."""

    def __init__(self, condition: Condition, message: str, dataset: Dataset | None = None) -> None:
        super().__init__(message)
        self.condition = condition
        self.retry_after_seconds: int | None = None  # set when the database is unavailable
        self.sop_class = str(dataset.get("SOPClassUID", "")) if dataset is not None else ""
        self.sop_instance = str(dataset.get("SOPInstanceUID", "")) if dataset is not None else ""

    @property
    def status(self) -> Status:
        return STATUSES[self.condition]

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled with its UIDs (the SR reader process raises it in the server)."""
        return InstanceRefused, (self.condition, str(self)), self.__dict__


def read_parts(data: bytes, patient_system: str, max_inflated_bytes: int) -> Parts:
    """The :data:`Parts` of the SR *data* (DICOM Part 10), without the edge checks and
    with the reader's own errors (``POST /assessments`` answers them itself)."""
    dataset = sr_reader.parse_dicom(data, max_inflated_bytes=max_inflated_bytes)
    return _parts(dataset, sr_reader.read_sr(dataset, patient_system=patient_system))


def read_checked(
    data: bytes, patient_system: str, study: str | None, max_inflated_bytes: int
) -> tuple[str, Parts]:
    """The SOP Class UID of the PS3.10 instance *data* and its :data:`Parts`, or
    :class:`InstanceRefused`.

    *study*, when given, is the StudyInstanceUID the instance must carry (STOW-RS
    ``/studies/{study}``); a deflated data set may inflate to *max_inflated_bytes*.
    """
    dataset = _parse(data, max_inflated_bytes)
    _check_meta(dataset)
    if study is not None and str(dataset.get("StudyInstanceUID", "")) != study:
        raise InstanceRefused(Condition.STUDY_MISMATCH, f"StudyInstanceUID is not {study}", dataset)
    try:
        sr_reader.require_measurement_report(dataset)
    except UnsupportedInput as exc:
        raise InstanceRefused(Condition.TEMPLATE, str(exc), dataset) from exc
    try:
        report = sr_reader.read_sr(dataset, patient_system=patient_system)
    except (TooCostly, TooLarge) as exc:
        raise InstanceRefused(Condition.LIMIT, str(exc), dataset) from exc
    except DomainError as exc:
        raise InstanceRefused(Condition.CONTENT, str(exc), dataset) from exc
    return str(dataset.SOPClassUID), _parts(dataset, report)


def _parts(dataset: Dataset, report: TimepointReport) -> Parts:
    """*report* with where *dataset* starts and its context (for the SR write-back)."""
    return report, sr_reader.data_set_start(dataset), sr_context.extract(dataset)


def _parse(data: bytes, max_inflated_bytes: int) -> Dataset:
    try:
        return sr_reader.parse_dicom(data, max_inflated_bytes=max_inflated_bytes)
    except (TooCostly, TooLarge) as exc:  # reliability.md 4: a size or structure limit
        raise InstanceRefused(Condition.LIMIT, str(exc)) from exc
    except InvalidInput as exc:
        raise InstanceRefused(Condition.CANNOT_UNDERSTAND, str(exc)) from exc
    except UnsupportedInput as exc:
        header = dcmread(
            BytesIO(data), stop_before_pixels=True, specific_tags=["SOPClassUID", "SOPInstanceUID"]
        )
        if header.get("SOPClassUID") == BasicTextSRStorage:
            message = "a Basic Text SR cannot hold a TID 1500 Measurement Report"
            raise InstanceRefused(Condition.TEMPLATE, message, header) from exc
        raise InstanceRefused(Condition.SOP_CLASS, str(exc), header) from exc


def _check_meta(dataset: Dataset) -> None:
    meta = dataset.file_meta
    for meta_keyword, keyword in (
        ("MediaStorageSOPClassUID", "SOPClassUID"),
        ("MediaStorageSOPInstanceUID", "SOPInstanceUID"),
    ):
        declared, actual = meta.get(meta_keyword), dataset.get(keyword)
        if declared is not None and actual is not None and declared != actual:
            raise InstanceRefused(
                Condition.META_MISMATCH, f"{meta_keyword} differs from {keyword}", dataset
            )
