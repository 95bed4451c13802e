"""One SR instance in, one DICOM status out: shared by STOW-RS and C-STORE
(architecture.md 2.6; reliability.md section 4).

:func:`read_instance` runs the edge checks in order, each with its own condition,
then the reader; :func:`commit` stores and assesses through the same use case as
``POST /assessments``. Both raise :class:`InstanceRefused`, whose :class:`Condition`
maps through the one table :data:`STATUSES` to the STOW-RS Failure Reason
(PS3.18 Table I.2-2) and the C-STORE Status (PS3.4 Table B.2-1).

The ``0xC1xx`` values are implementation-specific ("Cannot understand" family, PS3.18
I.2.2 allows them when the conformance statement lists them; the README does). They
avoid the standard ``C122`` and pynetdicom's own ``C001``, ``C002``, ``C210``, ``C211``.

A Basic Text SR (1.2.840.10008.5.1.4.1.1.88.11) is accepted at association (contract
section 2) but cannot hold TID 1500 numeric content (interop.md 1.9), so its content is
refused with ``0xC110`` "template not supported", on both transports.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from io import BytesIO
from typing import Final

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import BasicTextSRStorage

from service import services
from service.adapters import sr_context, sr_reader
from service.adapters.db import Store
from service.domain.errors import (
    Conflict,
    DomainError,
    IdentityConflict,
    InvalidInput,
    TooCostly,
    TooLarge,
    Unavailable,
    UnsupportedInput,
)
from service.domain.model import AssessmentParameters
from service.entrypoints import push_worker

logger = logging.getLogger(__name__)

SUCCESS: Final = 0x0000


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

# Domain errors after the document was read (reader, store, criteria), by MRO.
_AFTER_READING: Final[dict[type[Exception], Condition]] = {
    IdentityConflict: Condition.IDENTITY_CONFLICT,
    Conflict: Condition.CONFLICT,
    Unavailable: Condition.RESOURCES,  # database down or locked: the SCU retries later
    DomainError: Condition.CONTENT,
}


@dataclass(frozen=True, slots=True)
class Instance:
    """One readable SR instance: its UIDs and the report read from it."""

    sop_class: str
    sop_instance: str
    inbound: services.Inbound


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


def condition_after_reading(exc: Exception) -> Condition:
    """The condition of an error raised once the SR was parsed (most specific class)."""
    return next(
        (_AFTER_READING[cls] for cls in type(exc).__mro__ if cls in _AFTER_READING),
        Condition.PROCESSING,
    )


def refused_like(refused: InstanceRefused, instance: Instance) -> InstanceRefused:
    """*instance* refused for the same reason as *refused*, without trying it."""
    return _refused(instance, refused.condition, str(refused), refused.retry_after_seconds)


def _refused(
    instance: Instance, condition: Condition, message: str, retry_after: int | None
) -> InstanceRefused:
    refused = InstanceRefused(condition, message)
    refused.sop_class, refused.sop_instance = instance.sop_class, instance.sop_instance
    refused.retry_after_seconds = retry_after
    return refused


def instance_digest(data: bytes, dataset: Dataset) -> str:
    """The digest of the data set after the File Meta Information.

    Each sender writes its own meta (implementation UID, source AE title), so the same
    instance re-delivered through another route keeps its digest (idempotency).
    """
    return services.digest(data[sr_reader.data_set_start(dataset) :])


def read_instance(
    data: bytes,
    *,
    patient_system: str,
    study: str | None = None,
    max_inflated_bytes: int = sr_reader.MAX_INFLATED_BYTES,
) -> Instance:
    """Parse and read one PS3.10 instance, or raise :class:`InstanceRefused`.

    *study*, when given, is the StudyInstanceUID every instance must carry (STOW-RS
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
    context = sr_context.extract(dataset)  # for the SR write-back (PACS push)
    inbound = services.Inbound(report, instance_digest(data, dataset), dicom_context=context)
    return Instance(str(dataset.SOPClassUID), report.source.uid, inbound)


@contextmanager
def committing(
    instance: Instance,
    root_url: str,
    pusher: push_worker.PushWorker | None = None,
    *,
    tenant: str,
    tally: services.Tally | None = None,
) -> Iterator[Callable[[Store], None]]:
    """The unit of work storing and assessing one report of *tenant* (as ``POST
    /assessments``), for the caller to run in a transaction inside the block
    (:func:`~service.adapters.db.transaction`, or a
    :class:`~service.adapters.writer.Writer`). Once the block ends, the timepoints whose
    result changed go to *pusher* (PACS push); a domain error in the block is raised as
    the instance's :class:`InstanceRefused`.
    """
    with _refusing(instance), push_worker.collect(pusher) as changed:
        yield _attempt(instance, root_url, changed, tenant, tally)


def _attempt(
    instance: Instance,
    root_url: str,
    changed: list[services.Change],
    tenant: str,
    tally: services.Tally | None,
) -> Callable[[Store], None]:
    """The unit of work storing and assessing *instance*; each attempt starts afresh."""
    forget_earlier_attempt = services.fresh_attempt(changed, tally)

    def attempt(store: Store) -> None:
        forget_earlier_attempt()
        _assess(store, instance, root_url, changed, tenant, tally)

    return attempt


@contextmanager
def _refusing(instance: Instance) -> Iterator[None]:
    """A domain error storing *instance* as its refusal."""
    try:
        yield
    except DomainError as exc:
        # the class only: the message may quote the SOP Instance UID (reliability.md 2.9)
        logger.info("instance refused: %s", type(exc).__name__)
        retry_after = exc.retry_after_seconds if isinstance(exc, Unavailable) else None
        raise _refused(instance, condition_after_reading(exc), str(exc), retry_after) from exc


def _assess(
    store: Store,
    instance: Instance,
    root_url: str,
    changed: list[services.Change],
    tenant: str,
    tally: services.Tally | None,
) -> None:
    services.assess_reports(
        store,
        [instance.inbound],
        [],
        AssessmentParameters(),
        root_url,
        changed=changed,
        tenant=tenant,
        tally=tally,
    )


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
