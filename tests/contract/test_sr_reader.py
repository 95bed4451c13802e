"""Contract of the DICOM SR reader (contract.md section 3; interop.md sections 1 and 2).

Reports built by :mod:`tests.sr_factory` are read back; the third-party samples in
``tests/data/sr`` (see ``tests/data/README.md``) are read as delivered; highdicom is
used as an independent oracle for identities and values.

pytest turns warnings into errors. pydicom warns when a value breaks its VR (the
dcmjs sample's 20-character Code Value, a NaN in a DS): the tests that meet such a
value expect the warning with ``pytest.warns``, so an unexpected one still fails.
"""

from __future__ import annotations

import contextlib
import random
import warnings
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path

import highdicom as hd
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import UID, generate_uid

from service.adapters import sr_reader
from service.adapters.sr_reader import SR_SOP_CLASSES, parse_dicom, read_sr
from service.domain.errors import InvalidInput, UnsupportedInput
from service.domain.model import (
    DEFAULT_PATIENT_SYSTEM,
    Code,
    LesionObservation,
    LesionRole,
    LesionState,
    MeasurementKind,
    QualitativeFinding,
    TimepointReport,
)
from tests.sr_factory import LesionSpec, make_sr, sr_bytes, tracking_uid

DATA = Path(__file__).resolve().parents[1] / "data" / "sr"
SH_TOO_LONG = "exceeds the maximum length of 16 allowed for VR SH"
INVALID_DS = "Invalid value for VR DS"


def _read(dataset: Dataset, **kwargs: str) -> TimepointReport:
    return read_sr(parse_dicom(sr_bytes(dataset)), **kwargs)


def _sample(name: str) -> Dataset:
    return parse_dicom((DATA / name).read_bytes())


def _by_id(report: TimepointReport) -> dict[str, LesionObservation]:
    return {str(lesion.identity.tracking_id): lesion for lesion in report.lesions}


def _groups(dataset: Dataset) -> list[Dataset]:
    """The Measurement Group items of a report made by :func:`make_sr`."""
    (measurements,) = (
        item
        for item in dataset.ContentSequence
        if item.ConceptNameCodeSequence[0].CodeValue == "126010"
    )
    return list(measurements.ContentSequence)


def _num(group: Dataset, code_value: str) -> Dataset:
    found: list[Dataset] = [
        item
        for item in group.ContentSequence
        if item.ValueType == "NUM" and item.ConceptNameCodeSequence[0].CodeValue == code_value
    ]
    (num,) = found
    return num


def _code_item(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _content(
    value_type: str, relationship: str, name: tuple[str, str, str], **values: object
) -> Dataset:
    """A plain pydicom content item, for shapes highdicom does not write."""
    item = Dataset()
    item.RelationshipType = relationship
    item.ValueType = value_type
    item.ConceptNameCodeSequence = [_code_item(*name)]
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def _num_item(name: tuple[str, str, str], value: str, unit: str) -> Dataset:
    measured = Dataset()
    measured.NumericValue = value
    measured.MeasurementUnitsCodeSequence = [_code_item(unit, "UCUM", unit)]
    return _content("NUM", "CONTAINS", name, MeasuredValueSequence=[measured])


def _set_unit(num: Dataset, unit: str, value: str | None = None) -> None:
    measured = num.MeasuredValueSequence[0]
    measured.MeasurementUnitsCodeSequence = [_code_item(unit, "UCUM", unit)]
    if value is not None:
        measured.NumericValue = value


def _one(lesion: LesionSpec, *, issuer: str | None = None, preliminary: bool = False) -> Dataset:
    return make_sr(
        patient_id="P1",
        study_date="20240105",
        lesions=[lesion],
        issuer=issuer,
        preliminary=preliminary,
    )


# -- round trip of make_sr() output --------------------------------------------------


def test_a_report_names_patient_date_study_and_document() -> None:
    dataset = make_sr(patient_id="P1", study_date="20240105", lesions=[LesionSpec("T1", 21)])

    report = _read(dataset)

    assert report.patient.system == DEFAULT_PATIENT_SYSTEM
    assert report.patient.value == "P1"
    assert report.date == date(2024, 1, 5)
    assert report.study_uid == dataset.StudyInstanceUID
    assert report.source.uid == dataset.SOPInstanceUID
    assert report.source.kind == "dicom-sr"
    assert report.source.preliminary is False
    assert report.label is None
    assert report.warnings == ()


def test_the_patient_system_can_be_configured() -> None:
    report = _read(_one(LesionSpec("T1", 21)), patient_system="urn:oid:1.2.3")

    assert report.patient.system == "urn:oid:1.2.3"


def test_an_issuer_of_patient_id_makes_the_patient_system() -> None:
    report = _read(_one(LesionSpec("T1", 21), issuer="HOSPITAL A"))

    assert report.patient.system == "urn:dicom:issuer:HOSPITAL A"
    assert report.patient.value == "P1"


def test_a_preliminary_report_is_marked_preliminary() -> None:
    report = _read(_one(LesionSpec("T1", 21), preliminary=True))

    assert report.source.preliminary is True


def test_targets_and_non_targets_keep_identity_role_site_and_axes() -> None:
    dataset = make_sr(
        patient_id="P1",
        study_date="20240105",
        lesions=[
            LesionSpec("T1", long_axis_mm=21.5, short_axis_mm=12, role="target"),
            LesionSpec("NT1", role="non-target", site="lung", state="PRESENT"),
            LesionSpec("X1", role="non-lesion"),
        ],
    )

    lesions = _by_id(_read(dataset))

    target = lesions["T1"]
    assert target.identity.tracking_uid == tracking_uid("P1", "T1")
    assert target.role is LesionRole.TARGET
    assert target.site == Code("10200004", "SCT", "Liver")
    assert target.is_nodal is False
    assert target.long_axis_mm == Decimal("21.5")
    assert target.short_axis_mm == Decimal("12.0")
    assert lesions["NT1"].role is LesionRole.NON_TARGET
    assert lesions["NT1"].site == Code("39607008", "SCT", "Lung")
    assert lesions["NT1"].measurements == ()
    assert lesions["X1"].role is LesionRole.NON_LESION


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("new", LesionRole.NEW),
        ("new-target", LesionRole.NEW_TARGET),
        ("new-non-target", LesionRole.NEW_NON_TARGET),
    ],
)
def test_new_lesions_are_read_from_ncit_codes(role: str, expected: LesionRole) -> None:
    (lesion,) = _read(_one(LesionSpec("New 1", 12, role=role))).lesions

    assert lesion.role is expected


def test_a_lesion_without_baseline_category_has_no_role() -> None:
    (lesion,) = _read(_one(LesionSpec("Lesion A", 30))).lesions

    assert lesion.role is None


def test_a_lymph_node_site_makes_a_nodal_lesion() -> None:
    (node,) = _read(_one(LesionSpec("T2", 18, 16, role="target", site="lymph node"))).lesions

    assert node.is_nodal is True
    assert node.site is not None
    assert node.site.value == "59441001"


def test_a_site_whose_meaning_names_a_node_is_nodal() -> None:
    dataset = _one(LesionSpec("T2", 18, 16))
    site = _groups(dataset)[0].ContentSequence[4]
    site.ConceptCodeSequence = [_code_item("68171009", "SCT", "Axillary lymph node")]

    (node,) = _read(dataset).lesions

    assert node.is_nodal is True


@pytest.mark.parametrize("state", list(LesionState))
def test_every_tumour_state_is_read_by_code_or_text(state: LesionState) -> None:
    (lesion,) = _read(_one(LesionSpec("NT1", role="non-target", state=state.value))).lesions

    assert lesion.state is state


def test_a_merged_lesion_names_the_lesion_it_merged_into() -> None:
    dataset = make_sr(
        patient_id="P1",
        study_date="20240105",
        lesions=[LesionSpec("T1", 40), LesionSpec("T2", state="MERGED", merged_into="T1")],
    )

    merged = _by_id(_read(dataset))["T2"]

    assert merged.merged_into is not None
    assert merged.merged_into.tracking_id == "T1"
    assert merged.merged_into.tracking_uid == tracking_uid("P1", "T1")


def test_a_merged_lesion_without_its_host_is_read_with_a_warning() -> None:
    report = _read(_one(LesionSpec("T2", state="MERGED")))

    assert report.lesions[0].merged_into is None
    assert any("does not name the lesion it merged into" in w for w in report.warnings)


def test_mean_attenuation_is_read_in_hounsfield_units() -> None:
    (lesion,) = _read(_one(LesionSpec("T1", 30, mean_hu=-12.5))).lesions

    assert lesion.values(MeasurementKind.MEAN_ATTENUATION) == (Decimal("-12.5"),)


def test_pre_coordinated_mean_attenuation_is_read() -> None:
    dataset = _one(LesionSpec("T1", 30, mean_hu=40))
    num = _num(_groups(dataset)[0], "112031")
    num.ConceptNameCodeSequence = [_code_item("112181", "DCM", "Mean Attenuation Coefficient")]
    del num.ContentSequence

    (lesion,) = _read(dataset).lesions

    assert lesion.values(MeasurementKind.MEAN_ATTENUATION) == (Decimal("40.0"),)


def test_attenuation_without_mean_derivation_is_ignored_with_a_warning() -> None:
    dataset = _one(LesionSpec("T1", 30, mean_hu=40))
    del _num(_groups(dataset)[0], "112031").ContentSequence

    report = _read(dataset)

    assert report.lesions[0].values(MeasurementKind.MEAN_ATTENUATION) == ()
    assert any("Attenuation Coefficient in [hnsf'U]" in w for w in report.warnings)


@pytest.mark.parametrize(
    ("unit", "value", "expected"),
    [("cm", "2.15", Decimal("21.50")), ("um", "21500", Decimal("21.5")), ("mm", "21.5", None)],
)
def test_lengths_are_converted_to_millimetres(unit: str, value: str, expected: object) -> None:
    dataset = _one(LesionSpec("T1", 21.5))
    _set_unit(_num(_groups(dataset)[0], "103339001"), unit, value)

    (lesion,) = _read(dataset).lesions

    assert lesion.long_axis_mm == (expected or Decimal(value))


def test_a_length_in_unit_one_is_read_as_millimetres_with_a_warning() -> None:
    dataset = _one(LesionSpec("T1", 21.5))
    _set_unit(_num(_groups(dataset)[0], "103339001"), "1")

    report = _read(dataset)

    assert report.lesions[0].long_axis_mm == Decimal("21.5")
    assert any("unit '1': read as mm" in w for w in report.warnings)


def test_measurements_keep_their_content_path_and_image() -> None:
    dataset = _one(LesionSpec("T1", 21.5, 10))
    image_uid = _groups(dataset)[0].ContentSequence[-1].ContentSequence[0]
    expected_uid = image_uid.ReferencedSOPSequence[0].ReferencedSOPInstanceUID

    (lesion,) = _read(dataset).lesions

    paths = [m.provenance.path for m in lesion.measurements]
    assert paths == ["3.1.6", "3.1.7"]
    assert {m.provenance.referenced_sop_uid for m in lesion.measurements} == {expected_uid}


def test_project_concepts_give_viable_axis_and_slice_thickness() -> None:
    dataset = _one(LesionSpec("T1", 30))
    group = _groups(dataset)[0]
    group.ContentSequence.append(_num_item(("viable-long-axis", "99TR", "Viable"), "1.8", "cm"))
    group.ContentSequence.append(_num_item(("slice-thickness", "99TR", "Slice"), "2.5", "mm"))

    (lesion,) = _read(dataset).lesions

    assert lesion.value(MeasurementKind.VIABLE_LONG_AXIS) == Decimal("18.0")
    assert lesion.slice_thickness_mm == Decimal("2.5")


def test_a_length_is_a_diameter_only_when_nothing_better_exists() -> None:
    dataset = make_sr(
        patient_id="P1", study_date="20240105", lesions=[LesionSpec("A"), LesionSpec("B", 25)]
    )
    for group in _groups(dataset):
        group.ContentSequence.append(_num_item(("G-D7FE", "SRT", "Length"), "33", "mm"))

    report = _read(dataset)

    lesions = _by_id(report)
    assert lesions["A"].values(MeasurementKind.DIAMETER) == (Decimal(33),)
    assert lesions["B"].values(MeasurementKind.DIAMETER) == ()
    assert lesions["B"].long_axis_mm == Decimal("25.0")
    assert any("Length at 3.1.7 read as a diameter" in w for w in report.warnings)
    assert any(w.startswith("Ignored measurements") and "Length" in w for w in report.warnings)


def test_other_concepts_are_ignored_in_one_warning() -> None:
    dataset = make_sr(
        patient_id="P1", study_date="20240105", lesions=[LesionSpec("A", 20), LesionSpec("B", 25)]
    )
    for group in _groups(dataset):
        group.ContentSequence.append(_num_item(("118565006", "SCT", "Volume"), "900", "mm3"))

    report = _read(dataset)

    assert report.warnings == ("Ignored measurements of unsupported concepts: Volume in mm3",)


def test_other_group_codes_and_texts_are_qualitative_findings() -> None:
    dataset = _one(LesionSpec("T1", 30))
    group = _groups(dataset)[0]
    group.ContentSequence.append(
        _content(
            "CODE",
            "CONTAINS",
            ("6574001", "SCT", "Necrosis"),
            ConceptCodeSequence=[_code_item("present", "99TR", "Present")],
        )
    )
    group.ContentSequence.append(
        _content("TEXT", "CONTAINS", ("121106", "DCM", "Comment"), TextValue="rim enhancing")
    )

    (lesion,) = _read(dataset).lesions

    assert lesion.findings == (
        QualitativeFinding(
            Code("6574001", "SCT", "Necrosis"), "present", Code("present", "99TR", "Present")
        ),
        QualitativeFinding(Code("121106", "DCM", "Comment"), "rim enhancing"),
    )


def test_a_time_point_label_is_read_from_tid_1502() -> None:
    dataset = _one(LesionSpec("T1", 30))
    _groups(dataset)[0].ContentSequence.insert(
        2,
        _content("TEXT", "HAS OBS CONTEXT", ("C2348792", "UMLS", "Time Point"), TextValue="FU1"),
    )

    report = _read(dataset)

    assert report.label == "FU1"
    assert report.lesions[0].findings == ()


def test_a_num_without_value_is_skipped_with_a_warning() -> None:
    dataset = make_sr(
        patient_id="P1",
        study_date="20240105",
        lesions=[LesionSpec("A", 20, 10), LesionSpec("B", 25)],
    )
    del _num(_groups(dataset)[0], "103339001").MeasuredValueSequence
    _num(_groups(dataset)[1], "103339001").MeasuredValueSequence = []

    report = _read(dataset)

    assert [lesion.long_axis_mm for lesion in report.lesions] == [None, None]
    assert report.lesions[0].short_axis_mm == Decimal("10.0")
    assert report.warnings == (
        "NUM 'Long axis' at 3.1.6 has no value: skipped",
        "NUM 'Long axis' at 3.2.6 has no value: skipped",
    )


def test_a_group_without_tracking_items_is_skipped_with_a_warning() -> None:
    dataset = make_sr(
        patient_id="P1", study_date="20240105", lesions=[LesionSpec("A", 20), LesionSpec("B", 25)]
    )
    group = _groups(dataset)[1]
    group.ContentSequence = group.ContentSequence[2:]

    report = _read(dataset)

    assert [str(lesion.identity) for lesion in report.lesions] == ["A"]
    assert report.warnings == (
        "Measurement group 3.2 has neither Tracking UID nor Tracking Identifier: skipped",
    )


def test_the_content_date_is_used_without_a_study_date() -> None:
    dataset = _one(LesionSpec("T1", 30))
    dataset.StudyDate = ""
    dataset.ContentDate = "20240220"

    assert _read(dataset).date == date(2024, 2, 20)


# -- third-party samples ------------------------------------------------------------


def test_the_highdicom_sample_with_legacy_codes_is_read() -> None:
    report = read_sr(_sample("highdicom_sr_document.dcm"))

    (lesion,) = report.lesions
    assert report.patient.value == "1CT1"
    assert report.date == date(2004, 1, 19)
    assert report.source.preliminary is True
    assert lesion.identity.tracking_id == "Planar ROI Measurements"
    assert lesion.identity.tracking_uid == (
        "1.2.826.0.1.3680043.8.498.95005499519195632686309166061552196996"
    )
    assert lesion.site == Code("T-D00F7", "SRT", "Cervico-thoracic spine")
    assert lesion.measurements == ()
    assert report.warnings == (
        "Ignored measurements of unsupported concepts: Area of defined region in cm2",
    )


def test_the_highdicom_sample_with_multiple_groups_is_read() -> None:
    report = read_sr(_sample("highdicom_sr_document_with_multiple_groups.dcm"))

    lesions = _by_id(report)
    assert list(lesions) == ["Image0001", "LungNodule0001", "Aorta0001", "Vertebra0001"]
    nodule = lesions["LungNodule0001"]
    assert nodule.site == Code("39607008", "SCT", "Lung")
    assert nodule.long_axis_mm == Decimal(10)
    (diameter,) = nodule.measurements
    assert diameter.kind is MeasurementKind.DIAMETER
    assert diameter.provenance.path == "7.2.6"
    assert diameter.provenance.referenced_sop_uid == (
        "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"
    )
    assert nodule.findings == (
        QualitativeFinding(
            Code("121403", "DCM", "Level of Significance"),
            "Not significant",
            Code("371928007", "SCT", "Not significant"),
        ),
    )
    assert lesions["Aorta0001"].values(MeasurementKind.DIAMETER) == (Decimal(20),)
    assert lesions["Image0001"].measurements == ()  # an IBSI histogram mean, not a ROI mean
    assert report.warnings == (
        "Ignored measurements of unsupported concepts:"
        " Intensity Histogram Mean in [hnsf'U], Volume in mm3",
    )


def test_the_dcmjs_sample_is_read_despite_its_quirks() -> None:
    dataset = _sample("dcmjs_structured_report.dcm")
    dataset.PatientID = "DCMJS-1"  # the sample has an empty PatientID

    with pytest.warns(UserWarning, match=SH_TOO_LONG):  # CodeValue "CORNERSTONEFREETEXT"
        report = read_sr(dataset)

    assert report.date == date(2020, 6, 17)  # ContentDate: StudyDate is empty
    ids = [lesion.identity.tracking_id for lesion in report.lesions]
    assert ids[0] == "ExampleText"  # the label replaces the ArrowAnnotate tool tag
    assert ids[1:] == [
        "cornerstoneTools@^4.0.0:EllipticalRoi",
        "cornerstoneTools@^4.0.0:Bidirectional",
        "cornerstoneTools@^4.0.0:Length",
        "cornerstoneTools@^4.0.0:Length",
        "cornerstoneTools@^4.0.0:EllipticalRoi",
    ]
    bidirectional = report.lesions[2]
    assert bidirectional.long_axis_mm == Decimal("93.9")  # SRT G-A185
    assert bidirectional.short_axis_mm == Decimal("47.0")  # SRT G-A186
    assert bidirectional.measurements[0].provenance.referenced_sop_uid == (
        "1.3.6.1.4.1.25403.52237031786.3872.20100510032220.11"
    )
    assert report.lesions[3].values(MeasurementKind.DIAMETER) == (Decimal("39.3664929116140"),)
    assert report.warnings == (
        "Group 5.1: Tracking Identifier 'cornerstoneTools@^4.0.0:ArrowAnnotate' is a viewer"
        " tool tag; used its label 'ExampleText'",
        "NUM 'Center' at 5.1.4 has no value: skipped",
        "Group 5.4: Length at 5.4.3 read as a diameter",
        "Group 5.5: Length at 5.5.3 read as a diameter",
        "Ignored measurements of unsupported concepts: AREA in mm2",
        "Measurement groups 5.2, 5.3, 5.4, 5.5, 5.6 are named only by a viewer tool tag:"
        " their lesions cannot be followed by name",
    )


def test_the_dcmjs_sample_as_delivered_has_no_patient() -> None:
    with pytest.raises(UnsupportedInput, match="no PatientID"):
        read_sr(_sample("dcmjs_structured_report.dcm"))


# -- highdicom as an oracle -----------------------------------------------------------


def _oracle(dataset: Dataset) -> dict[str, list[tuple[str, Decimal]]]:
    """Tracking UID -> (concept, value) of every measurement, as highdicom reads them."""
    content = hd.sr.Comprehensive3DSR.from_dataset(dataset).content
    assert isinstance(content, hd.sr.MeasurementReport)
    groups = [
        *content.get_image_measurement_groups(),
        *content.get_planar_roi_measurement_groups(),
        *content.get_volumetric_roi_measurement_groups(),
    ]
    return {
        str(group.tracking_uid): sorted(
            (m.name.value, Decimal(str(m.value))) for m in group.get_measurements()
        )
        for group in groups
    }


def _ours(report: TimepointReport, dataset: Dataset) -> dict[str, list[tuple[str, Decimal]]]:
    names = dict(_num_paths(dataset.ContentSequence, ""))
    return {
        str(lesion.identity.tracking_uid): sorted(
            (names[m.provenance.path], m.value) for m in lesion.measurements
        )
        for lesion in report.lesions
    }


def _num_paths(items: list[Dataset], path: str) -> list[tuple[str, str]]:
    found = []
    for index, item in enumerate(items, start=1):
        item_path = f"{path}.{index}" if path else str(index)
        if item.ValueType == "NUM":
            found.append((item_path, item.ConceptNameCodeSequence[0].CodeValue))
        found.extend(_num_paths(item.get("ContentSequence", []), item_path))
    return found


@pytest.mark.parametrize(
    ("make", "complete"),
    [
        (
            lambda: make_sr(
                patient_id="P9",
                study_date="20231201",
                lesions=[
                    LesionSpec("T1", 31.5, 20, role="target", mean_hu=55),
                    LesionSpec("T2", 17, 15.5, role="target", site="lymph node"),
                    LesionSpec("NT1", role="non-target", state="PRESENT", site="lung"),
                ],
            ),
            True,
        ),
        # the sample's IBSI mean and volume are not read (ignored with a warning)
        (lambda: _sample("highdicom_sr_document_with_multiple_groups.dcm"), False),
    ],
    ids=["factory", "highdicom-sample"],
)
def test_identities_and_values_agree_with_highdicom(
    make: Callable[[], Dataset], complete: bool
) -> None:
    dataset = make()
    expected = _oracle(dataset)

    ours = _ours(read_sr(dataset), dataset)

    assert set(ours) == set(expected)
    for uid, measurements in ours.items():
        assert set(measurements) <= set(expected[uid])
        assert measurements == expected[uid] or not complete


# -- bad input ------------------------------------------------------------------------


def test_bytes_that_are_not_dicom_are_invalid() -> None:
    with pytest.raises(InvalidInput, match="not a readable DICOM Part 10 file"):
        parse_dicom(b"{'resourceType': 'Observation'}" * 10)


def test_a_truncated_file_is_invalid() -> None:
    data = sr_bytes(_one(LesionSpec("T1", 30)))

    with pytest.raises(InvalidInput, match="truncated"):
        parse_dicom(data[: len(data) * 2 // 3])


def test_a_ct_image_is_not_supported() -> None:
    data = (DATA / "ct_image.dcm").read_bytes()

    with pytest.raises(UnsupportedInput, match="not an Enhanced, Comprehensive"):
        parse_dicom(data)


def test_a_basic_text_sr_is_not_supported() -> None:
    dataset = _one(LesionSpec("T1", 30))
    basic_text_sr = UID("1.2.840.10008.5.1.4.1.1.88.11")
    dataset.SOPClassUID = dataset.file_meta.MediaStorageSOPClassUID = basic_text_sr

    assert dataset.SOPClassUID not in SR_SOP_CLASSES
    with pytest.raises(UnsupportedInput):
        parse_dicom(sr_bytes(dataset))


def test_an_sr_that_is_not_a_measurement_report_is_not_supported() -> None:
    dataset = _one(LesionSpec("T1", 30))
    dataset.ConceptNameCodeSequence = [_code_item("11528-7", "LN", "Radiology Report")]
    del dataset.ContentTemplateSequence

    with pytest.raises(UnsupportedInput, match="not a TID 1500 Measurement Report"):
        _read(dataset)


def test_a_measurement_report_without_groups_is_not_supported() -> None:
    dataset = _one(LesionSpec("T1", 30))
    dataset.ContentSequence = [
        item
        for item in dataset.ContentSequence
        if item.ConceptNameCodeSequence[0].CodeValue != "126010"
    ]

    with pytest.raises(UnsupportedInput, match="no measurement groups"):
        _read(dataset)


@pytest.mark.parametrize("patient_id", ["", None])
def test_a_report_without_patient_id_is_not_supported(patient_id: str | None) -> None:
    dataset = _one(LesionSpec("T1", 30))
    if patient_id is None:
        del dataset.PatientID
    else:
        dataset.PatientID = patient_id

    with pytest.raises(UnsupportedInput, match="no PatientID"):
        _read(dataset)


def test_a_report_without_any_date_is_not_supported() -> None:
    dataset = _one(LesionSpec("T1", 30))
    dataset.StudyDate = ""
    del dataset.ContentDate

    with pytest.raises(UnsupportedInput, match="neither StudyDate nor ContentDate"):
        _read(dataset)


def test_a_non_finite_value_is_invalid() -> None:
    dataset = _one(LesionSpec("T1", 30))

    with pytest.warns(UserWarning, match=INVALID_DS), pytest.raises(InvalidInput, match="finite"):
        _set_unit(_num(_groups(dataset)[0], "103339001"), "mm", "NaN")
        _read(dataset)


def test_a_length_out_of_range_is_invalid_and_located() -> None:
    dataset = _one(LesionSpec("T1", 30))
    _set_unit(_num(_groups(dataset)[0], "103339001"), "cm", "250")

    with pytest.raises(InvalidInput, match="outside") as raised:
        _read(dataset)

    assert raised.value.expression == "3.1.6"


def test_a_length_in_kilograms_is_not_supported() -> None:
    dataset = _one(LesionSpec("T1", 30))
    _set_unit(_num(_groups(dataset)[0], "103339001"), "kg")

    with pytest.raises(UnsupportedInput, match="'kg'"):
        _read(dataset)


def test_unexpected_errors_in_the_walk_become_invalid_input(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(_: Dataset) -> date:
        raise KeyError("StudyDate")

    monkeypatch.setattr(sr_reader, "_date", broken)

    with pytest.raises(InvalidInput, match="malformed SR content"):
        read_sr(_one(LesionSpec("T1", 30)))


def test_a_fresh_tracking_uid_can_be_given() -> None:
    uid = str(generate_uid())

    (lesion,) = _read(_one(LesionSpec("T1", 30, tracking_uid=uid))).lesions

    assert lesion.identity.tracking_uid == uid


def test_corrupted_bytes_raise_only_domain_errors() -> None:
    data = sr_bytes(
        make_sr(
            patient_id="P1",
            study_date="20240105",
            lesions=[LesionSpec("T1", 21, 10, role="target"), LesionSpec("NT1", state="PRESENT")],
        )
    )
    rng = random.Random(20240105)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the garbage it reads
        for _ in range(300):
            corrupted = bytearray(data)
            for _ in range(rng.randint(1, 4)):
                corrupted[rng.randrange(132, len(corrupted))] = rng.randrange(256)
            with contextlib.suppress(InvalidInput, UnsupportedInput):
                read_sr(parse_dicom(bytes(corrupted)))
