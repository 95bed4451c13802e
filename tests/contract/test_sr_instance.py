"""Why an SR instance is refused, and the STOW-RS / C-STORE status table
(service/entrypoints/sr_instance.py; reliability.md section 4; PS3.18 Table I.2-2;
PS3.4 Table B.2-1)."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import pytest
from pydicom.uid import BasicTextSRStorage, CTImageStorage

from service.entrypoints import sr_instance
from service.entrypoints.sr_instance import Condition
from tests.sr_factory import one_lesion_sr, sr_bytes

DATA = Path(__file__).resolve().parents[1] / "data" / "sr"
RESERVED = {0xC122, 0xC001, 0xC002, 0xC210, 0xC211}  # standard or pynetdicom's own


def _refused(data: bytes, study: str | None = None) -> sr_instance.InstanceRefused:
    with pytest.raises(sr_instance.InstanceRefused) as caught:
        sr_instance.read_checked(data, "urn:test", study, 1024 * 1024)
    return caught.value


def test_every_condition_has_codes_in_the_right_family() -> None:
    assert set(sr_instance.STATUSES) == set(Condition)
    families = {
        Condition.RESOURCES: range(0xA700, 0xA800),
        Condition.META_MISMATCH: range(0xA900, 0xAA00),
        Condition.SOP_CLASS: [0x0122],
        Condition.PROCESSING: [0x0110],
    }
    for condition, status in sr_instance.STATUSES.items():
        allowed = families.get(condition, range(0xC000, 0xD000))
        assert status.failure_reason in allowed and status.cstore in allowed, condition
        assert status.failure_reason not in RESERVED
    reasons = [status.failure_reason for status in sr_instance.STATUSES.values()]
    assert len(set(reasons)) == len(reasons)


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
    dataset = one_lesion_sr(SOPClassUID=BasicTextSRStorage)
    dataset.file_meta.MediaStorageSOPClassUID = BasicTextSRStorage
    refused = _refused(sr_bytes(dataset))
    assert (refused.condition, refused.status.cstore) == (Condition.TEMPLATE, 0xC110)
    assert refused.sop_instance == dataset.SOPInstanceUID


def test_another_sr_template_is_not_supported() -> None:
    dataset = one_lesion_sr()
    dataset.ConceptNameCodeSequence[0].CodeValue = "18748-4"  # LOINC Diagnostic imaging report
    dataset.ConceptNameCodeSequence[0].CodingSchemeDesignator = "LN"
    del dataset.ContentTemplateSequence
    assert _refused(sr_bytes(dataset)).condition is Condition.TEMPLATE


def test_tid_1500_without_a_patient_is_invalid_content() -> None:
    refused = _refused(sr_bytes(one_lesion_sr(PatientID="")))
    assert (refused.condition, refused.status.failure_reason) == (Condition.CONTENT, 0xC111)


def test_meta_and_data_set_that_disagree() -> None:
    dataset = one_lesion_sr()
    data = sr_bytes(dataset)
    uid = dataset.SOPInstanceUID.encode()
    other = uid[:-1] + (b"1" if uid[-1:] != b"1" else b"2")
    meta_end = data.index(uid) + len(uid)  # the first copy is MediaStorageSOPInstanceUID
    buffer = BytesIO(data[: meta_end - len(uid)] + other + data[meta_end:])
    assert _refused(buffer.getvalue()).condition is Condition.META_MISMATCH


def test_another_study_than_the_url_names() -> None:
    refused = _refused(sr_bytes(one_lesion_sr()), study="1.2.3")
    assert (refused.condition, refused.status.failure_reason) == (Condition.STUDY_MISMATCH, 0xC112)


def test_a_structure_limit_is_c101_not_cannot_understand() -> None:
    from tests.fuzz.dicom_bytes import nested_content, with_content
    from tests.fuzz.hostile import report

    refused = _refused(with_content(report(), nested_content(1_000)))
    assert refused.condition is Condition.LIMIT
    assert refused.status.failure_reason == refused.status.cstore == 0xC101
