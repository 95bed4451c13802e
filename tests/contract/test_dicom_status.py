"""An SR instance to store (service/entrypoints/dicom_status.py): read with its UIDs,
its digest, the condition of an error once it was read (reliability.md section 4; the
edge checks and the status table: test_sr_instance.py)."""

from __future__ import annotations

import pytest
from pydicom.sr.codedict import codes

from service.domain.errors import (
    Conflict,
    IdentityConflict,
    InvalidInput,
    NotEvaluable,
    Unavailable,
    UnsupportedInput,
)
from service.entrypoints import dicom_status
from service.entrypoints.sr_instance import Condition
from tests.sr_factory import one_lesion_sr, sr_bytes


@pytest.mark.parametrize(
    ("error", "condition"),
    [
        (Conflict("again"), Condition.CONFLICT),
        (IdentityConflict("study of another patient"), Condition.IDENTITY_CONFLICT),
        (InvalidInput("bad"), Condition.CONTENT),
        (UnsupportedInput("unit"), Condition.CONTENT),
        (NotEvaluable("no baseline"), Condition.CONTENT),
        (Unavailable("database unavailable"), Condition.RESOURCES),
        (RuntimeError("bug"), Condition.PROCESSING),
    ],
)
def test_errors_after_reading_map_by_class(error: Exception, condition: Condition) -> None:
    assert dicom_status.condition_after_reading(error) is condition


def test_a_tid_1500_sr_is_read_with_its_uids() -> None:
    dataset = one_lesion_sr()
    instance = dicom_status.read_instance(
        sr_bytes(dataset), patient_system="urn:test", study=dataset.StudyInstanceUID
    )
    assert instance.sop_instance == dataset.SOPInstanceUID
    assert instance.sop_class == dataset.SOPClassUID
    assert instance.inbound.report.patient.value == "STATUS-1"


def test_the_digest_ignores_the_senders_file_meta() -> None:
    dataset = one_lesion_sr()
    first = sr_bytes(dataset)
    dataset.file_meta.ImplementationVersionName = "OTHER_SENDER_1"
    dataset.file_meta.SourceApplicationEntityTitle = "PACS"
    second = sr_bytes(dataset)
    assert first != second
    read = [dicom_status.read_instance(data, patient_system="s") for data in (first, second)]
    assert read[0].inbound.digest == read[1].inbound.digest
    dataset.ContentDescription = codes.DCM.ImagingMeasurementReport.meaning  # other content
    third = dicom_status.read_instance(sr_bytes(dataset), patient_system="s")
    assert third.inbound.digest != read[0].inbound.digest
