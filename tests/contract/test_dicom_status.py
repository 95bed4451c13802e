"""The STOW-RS / C-STORE status table and the per-instance edge checks
(reliability.md section 4; PS3.18 Table I.2-2; PS3.4 Table B.2-1)."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import BasicTextSRStorage, CTImageStorage

from service.domain.errors import (
    Conflict,
    IdentityConflict,
    InvalidInput,
    NotEvaluable,
    Unavailable,
    UnsupportedInput,
)
from service.entrypoints import dicom_status
from service.entrypoints.dicom_status import Condition
from tests.sr_factory import LesionSpec, make_sr, sr_bytes

DATA = Path(__file__).resolve().parents[1] / "data" / "sr"
RESERVED = {0xC122, 0xC001, 0xC002, 0xC210, 0xC211}  # standard or pynetdicom's own


def _sr(**changes: object) -> Dataset:
    dataset = make_sr(
        patient_id="STATUS-1", study_date="20240105", lesions=[LesionSpec("T1", long_axis_mm=20)]
    )
    for keyword, value in changes.items():
        setattr(dataset, keyword, value)
    return dataset


def _refused(data: bytes, study: str | None = None) -> dicom_status.InstanceRefused:
    with pytest.raises(dicom_status.InstanceRefused) as caught:
        dicom_status.read_instance(data, patient_system="urn:test", study=study)
    return caught.value


def test_every_condition_has_codes_in_the_right_family() -> None:
    assert set(dicom_status.STATUSES) == set(Condition)
    families = {
        Condition.RESOURCES: range(0xA700, 0xA800),
        Condition.META_MISMATCH: range(0xA900, 0xAA00),
        Condition.SOP_CLASS: [0x0122],
        Condition.PROCESSING: [0x0110],
    }
    for condition, status in dicom_status.STATUSES.items():
        allowed = families.get(condition, range(0xC000, 0xD000))
        assert status.failure_reason in allowed and status.cstore in allowed, condition
        assert status.failure_reason not in RESERVED
    reasons = [status.failure_reason for status in dicom_status.STATUSES.values()]
    assert len(set(reasons)) == len(reasons)


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
    dataset = _sr()
    instance = dicom_status.read_instance(
        sr_bytes(dataset), patient_system="urn:test", study=dataset.StudyInstanceUID
    )
    assert instance.sop_instance == dataset.SOPInstanceUID
    assert instance.sop_class == dataset.SOPClassUID
    assert instance.inbound.report.patient.value == "STATUS-1"


def test_not_dicom_cannot_be_understood() -> None:
    refused = _refused(b"\0" * 128 + b"DICM" + b"garbage")
    assert refused.condition is Condition.CANNOT_UNDERSTAND
    assert refused.status.failure_reason == 0xC100
    assert refused.sop_instance == ""


def test_an_image_is_an_unsupported_sop_class_with_its_uids() -> None:
    refused = _refused((DATA / "ct_image.dcm").read_bytes())
    assert refused.condition is Condition.SOP_CLASS
    assert (refused.sop_class, refused.status.failure_reason) == (CTImageStorage, 0x0122)
    assert refused.sop_instance


def test_a_basic_text_sr_has_an_unsupported_template() -> None:
    dataset = _sr(SOPClassUID=BasicTextSRStorage)
    dataset.file_meta.MediaStorageSOPClassUID = BasicTextSRStorage
    refused = _refused(sr_bytes(dataset))
    assert (refused.condition, refused.status.cstore) == (Condition.TEMPLATE, 0xC110)
    assert refused.sop_instance == dataset.SOPInstanceUID


def test_another_sr_template_is_not_supported() -> None:
    dataset = _sr()
    dataset.ConceptNameCodeSequence[0].CodeValue = "18748-4"  # LOINC Diagnostic imaging report
    dataset.ConceptNameCodeSequence[0].CodingSchemeDesignator = "LN"
    del dataset.ContentTemplateSequence
    assert _refused(sr_bytes(dataset)).condition is Condition.TEMPLATE


def test_tid_1500_without_a_patient_is_invalid_content() -> None:
    refused = _refused(sr_bytes(_sr(PatientID="")))
    assert (refused.condition, refused.status.failure_reason) == (Condition.CONTENT, 0xC111)


def test_meta_and_data_set_that_disagree() -> None:
    dataset = _sr()
    data = sr_bytes(dataset)
    uid = dataset.SOPInstanceUID.encode()
    other = uid[:-1] + (b"1" if uid[-1:] != b"1" else b"2")
    meta_end = data.index(uid) + len(uid)  # the first copy is MediaStorageSOPInstanceUID
    buffer = BytesIO(data[: meta_end - len(uid)] + other + data[meta_end:])
    assert _refused(buffer.getvalue()).condition is Condition.META_MISMATCH


def test_another_study_than_the_url_names() -> None:
    refused = _refused(sr_bytes(_sr()), study="1.2.3")
    assert (refused.condition, refused.status.failure_reason) == (Condition.STUDY_MISMATCH, 0xC112)


def test_the_digest_ignores_the_senders_file_meta() -> None:
    dataset = _sr()
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


def test_a_structure_limit_is_c101_not_cannot_understand() -> None:
    from tests.fuzz.dicom_bytes import nested_content, with_content
    from tests.fuzz.hostile import report

    refused = _refused(with_content(report(), nested_content(1_000)))
    assert refused.condition is Condition.LIMIT
    assert refused.status.failure_reason == refused.status.cstore == 0xC101
