"""Build genuine DICOM SR "Measurement Report" (PS3.16 TID 1500) documents for tests.

:func:`make_sr` writes one TID 1410 planar ROI group per :class:`LesionSpec` with
highdicom 0.28 (interop.md 2.3), the shape the service reads (contract section 3):

* Tracking Identifier (112039, DCM) + Tracking UID (112040, DCM);
* Finding (52988006, SCT "Lesion"), Finding Site (363698007, SCT), Measurement Method
  (126081, DCM "RECIST 1.1");
* a 2-point POLYLINE Image Region on a stub CT image: a Dataset with patient, study,
  series and SOP attributes and no pixel data, passed to highdicom as evidence; or,
  with :attr:`LesionSpec.frame_of_reference_uid`, a SCOORD3D POLYLINE in that frame;
* NUM long axis (103339001, SCT) / short axis (103340004, SCT) in mm, and mean
  attenuation (112031, DCM) with Derivation Mean (373098007, SCT) in ``[hnsf'U]``;
* Baseline Category (112016, DCM) or NCIt new-lesion codes and Tumor State
  (C96643, NCIt) as qualitative evaluations; states without an NCIt code are
  written in the project scheme ``99TR`` with the state text as meaning.

highdicom allows one Tracking Identifier per group, so the lesion a MERGED lesion
merged into (:attr:`LesionSpec.merged_into`) is added with plain pydicom: a TEXT
(112039) and a UIDREF (112040) item under the Tumor State item. IssuerOfPatientID
is set on the finished dataset (highdicom does not copy it from the evidence).

UIDs are deterministic (``generate_uid(entropy_srcs=...)``): the same arguments give
the same document, and a lesion's default Tracking UID depends only on the patient
and its tracking id, so the same lesion keeps its UID across timepoints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from io import BytesIO

import highdicom as hd
import numpy as np
from pydicom import dcmread, dcmwrite
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import CTImageStorage, generate_uid

_ROLES = {
    "target": hd.sr.CodedConcept("112074", "DCM", "Target Lesion at Baseline"),
    "non-target": hd.sr.CodedConcept("112075", "DCM", "Non-Target Lesion at Baseline"),
    "non-lesion": hd.sr.CodedConcept("112076", "DCM", "Non-Lesion at Baseline"),
    "new": hd.sr.CodedConcept("C94522", "NCIt", "New Lesion"),
    "new-target": hd.sr.CodedConcept("C139127", "NCIt", "New Target Lesion"),
    "new-non-target": hd.sr.CodedConcept("C139126", "NCIt", "New Non-Target Lesion"),
}
_NCIT_STATES = {
    "PRESENT": hd.sr.CodedConcept("C25626", "NCIt", "Present"),
    "ABSENT": hd.sr.CodedConcept("C48190", "NCIt", "Absent"),
    "MERGED": hd.sr.CodedConcept("C94525", "NCIt", "Tumor Merged"),
    "EQUIVOCAL": hd.sr.CodedConcept("C86071", "NCIt", "Equivocal"),
    "UNEQUIVOCAL PROGRESSION": hd.sr.CodedConcept("C123645", "NCIt", "Unequivocal Progression"),
}
_SITES = {
    "liver": codes.SCT.Liver,  # 10200004
    "lung": codes.SCT.Lung,  # 39607008
    "lymph node": codes.SCT.LymphNode,  # 59441001
}
_BASELINE_CATEGORY = hd.sr.CodedConcept("112016", "DCM", "Baseline Category")
_TUMOR_STATE = hd.sr.CodedConcept("C96643", "NCIt", "Tumor State")
_RECIST_11 = hd.sr.CodedConcept("126081", "DCM", "RECIST 1.1")
_TRACKING_ID = hd.sr.CodedConcept("112039", "DCM", "Tracking Identifier")
_TRACKING_UID = hd.sr.CodedConcept("112040", "DCM", "Tracking Unique Identifier")
_VIABLE = hd.sr.CodedConcept("viable-long-axis", "99TR", "Viable long axis")
# Contract section 3: SNOMED concepts of the ancillary findings; others are 99TR concepts.
_FINDING_CONCEPTS = {
    "necrosis": hd.sr.CodedConcept("6574001", "SCT", "Necrosis"),
    "fibrosis": hd.sr.CodedConcept("112674009", "SCT", "Fibrosis"),
    "calcification": hd.sr.CodedConcept("18115005", "SCT", "Pathologic calcification"),
    "haemorrhage": hd.sr.CodedConcept("50960005", "SCT", "Hemorrhage"),
    "cystic change": hd.sr.CodedConcept("367643001", "SCT", "Cyst"),
}


@dataclass(frozen=True)
class LesionSpec:
    """One lesion at one timepoint: one TID 1410 group of the report."""

    tracking_id: str  # e.g. "T1"
    long_axis_mm: float | None = None
    short_axis_mm: float | None = None
    role: str | None = None  # a LesionRole value ("target", "non-target", "new", ...)
    site: str = "liver"  # "liver" | "lung" | "lymph node"
    state: str | None = None  # a LesionState value ("ABSENT", "TOO SMALL TO MEASURE", ...)
    tracking_uid: str | None = None  # default: derived from patient id + tracking_id
    mean_hu: float | None = None
    merged_into: str | None = None  # tracking_id of the lesion a MERGED lesion joined
    viable_mm: float | None = None  # mRECIST viable long axis (99TR viable-long-axis)
    findings: tuple[tuple[str, str], ...] = ()  # (sign, value): ("necrosis", "new"), ...
    frame_of_reference_uid: str | None = None  # a SCOORD3D region (REGION_3D) in this frame


# The points of the regions make_sr writes: (column, row) pairs, (x, y, z) triplets.
REGION_2D = ((10.0, 10.0), (40.0, 10.0))
REGION_3D = ((-10.5, 20.25, 30.0), (20.0, 20.25, 30.0))


def tracking_uid(patient_id: str, tracking_id: str) -> str:
    """The default Tracking UID :func:`make_sr` gives lesion *tracking_id*."""
    return str(generate_uid(entropy_srcs=["tracking", patient_id, tracking_id]))


def make_sr(
    *,
    patient_id: str,
    study_date: str,
    lesions: Sequence[LesionSpec],
    issuer: str | None = None,
    sop_instance_uid: str | None = None,
    series_number: int = 99,
    preliminary: bool = False,
) -> Dataset:
    """A Comprehensive 3D SR TID 1500 report of *lesions* on *study_date* (YYYYMMDD).

    The default SOP Instance UID is derived from all arguments, so equal calls give
    equal documents and different content gives a different UID. The result is read
    back from its bytes: a plain pydicom dataset whose content items tests may edit
    (highdicom's own content sequences accept only highdicom items).
    """
    seed = [patient_id, study_date, repr(tuple(lesions)), str(issuer), str(series_number)]
    seed.append(str(preliminary))
    image = _stub_ct_image(patient_id, study_date)
    groups = [_group(lesion, patient_id, image) for lesion in lesions]
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion,
        imaging_measurements=groups,
        title=codes.DCM.ImagingMeasurementReport,
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=[image],
        content=report,
        series_instance_uid=str(generate_uid(entropy_srcs=["sr-series", *seed])),
        series_number=series_number,
        sop_instance_uid=sop_instance_uid or str(generate_uid(entropy_srcs=["sr", *seed])),
        instance_number=1,
        manufacturer="tumour-response tests",
        is_complete=True,
        is_final=not preliminary,
    )
    if issuer is not None:
        sr.IssuerOfPatientID = issuer
    return dcmread(BytesIO(sr_bytes(sr)))


def sr_bytes(dataset: Dataset) -> bytes:
    """*dataset* as DICOM Part 10 bytes (preamble and file meta enforced)."""
    buffer = BytesIO()
    dcmwrite(buffer, dataset, enforce_file_format=True)
    return buffer.getvalue()


def _stub_ct_image(patient_id: str, study_date: str) -> Dataset:
    """The evidence every region points at: CT image attributes without pixels."""
    image = Dataset()
    image.SOPClassUID = CTImageStorage
    image.SOPInstanceUID = generate_uid(entropy_srcs=["ct-image", patient_id, study_date])
    image.StudyInstanceUID = generate_uid(entropy_srcs=["study", patient_id, study_date])
    image.SeriesInstanceUID = generate_uid(entropy_srcs=["ct-series", patient_id, study_date])
    image.Modality = "CT"
    image.PatientID = patient_id
    image.PatientName = "Test^Patient"
    image.PatientBirthDate = ""
    image.PatientSex = ""
    image.StudyDate = study_date
    image.StudyTime = "120000"
    image.AccessionNumber = ""
    image.StudyID = "1"
    image.ReferringPhysicianName = ""
    return image


def _group(
    lesion: LesionSpec, patient_id: str, image: Dataset
) -> hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations:
    region: hd.sr.ImageRegion | hd.sr.ImageRegion3D = hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=np.array(REGION_2D),
        source_image=hd.sr.SourceImageForRegion(
            referenced_sop_class_uid=image.SOPClassUID,
            referenced_sop_instance_uid=image.SOPInstanceUID,
        ),
    )
    if lesion.frame_of_reference_uid is not None:
        region = hd.sr.ImageRegion3D(
            graphic_type=hd.sr.GraphicTypeValues3D.POLYLINE,
            graphic_data=np.array(REGION_3D),
            frame_of_reference_uid=lesion.frame_of_reference_uid,
        )
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        referenced_region=region,
        tracking_identifier=hd.sr.TrackingIdentifier(
            identifier=lesion.tracking_id,
            uid=lesion.tracking_uid or tracking_uid(patient_id, lesion.tracking_id),
        ),
        finding_type=codes.SCT.Lesion,
        finding_sites=[hd.sr.FindingSite(_SITES[lesion.site])],
        method=_RECIST_11,
        measurements=_measurements(lesion),
        qualitative_evaluations=_evaluations(lesion, patient_id),
    )


def _measurements(lesion: LesionSpec) -> list[hd.sr.Measurement]:
    found = [
        hd.sr.Measurement(name=name, value=value, unit=codes.UCUM.Millimeter)
        for name, value in (
            (codes.SCT.LongAxis, lesion.long_axis_mm),
            (codes.SCT.ShortAxis, lesion.short_axis_mm),
        )
        if value is not None
    ]
    if lesion.viable_mm is not None:
        found.append(
            hd.sr.Measurement(name=_VIABLE, value=lesion.viable_mm, unit=codes.UCUM.Millimeter)
        )
    if lesion.mean_hu is not None:
        found.append(
            hd.sr.Measurement(
                name=codes.DCM.AttenuationCoefficient,
                value=lesion.mean_hu,
                unit=codes.UCUM.HounsfieldUnit,
                derivation=codes.SCT.Mean,
            )
        )
    return found


def _evaluations(lesion: LesionSpec, patient_id: str) -> list[hd.sr.QualitativeEvaluation]:
    found = []
    if lesion.role is not None:
        found.append(hd.sr.QualitativeEvaluation(_BASELINE_CATEGORY, _ROLES[lesion.role]))
    if lesion.state is not None:
        found.append(_state(lesion, patient_id))
    found.extend(
        hd.sr.QualitativeEvaluation(
            _FINDING_CONCEPTS.get(sign) or hd.sr.CodedConcept(sign, "99TR", sign),
            hd.sr.CodedConcept(value, "99TR", value.capitalize()),
        )
        for sign, value in lesion.findings
    )
    return found


def _state(lesion: LesionSpec, patient_id: str) -> hd.sr.QualitativeEvaluation:
    text = str(lesion.state)
    value = _NCIT_STATES.get(text) or hd.sr.CodedConcept(
        text.lower().replace(" ", "-"), "99TR", text
    )
    item = hd.sr.QualitativeEvaluation(_TUMOR_STATE, value)
    if lesion.merged_into:
        item[0].ContentSequence = [
            hd.sr.TextContentItem(
                name=_TRACKING_ID,
                value=lesion.merged_into,
                relationship_type=hd.sr.RelationshipTypeValues.HAS_PROPERTIES,
            ),
            hd.sr.UIDRefContentItem(
                name=_TRACKING_UID,
                value=tracking_uid(patient_id, lesion.merged_into),
                relationship_type=hd.sr.RelationshipTypeValues.HAS_PROPERTIES,
            ),
        ]
    return item


def one_lesion_sr(**changes: object) -> Dataset:
    """A TID 1500 SR of one lesion (patient STATUS-1, 2024-01-05), with *changes* set on
    its data set (keyword: value)."""
    dataset = make_sr(
        patient_id="STATUS-1", study_date="20240105", lesions=[LesionSpec("T1", long_axis_mm=20)]
    )
    for keyword, value in changes.items():
        setattr(dataset, keyword, value)
    return dataset
