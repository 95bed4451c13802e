"""An assessment as a DICOM SR "Measurement Report" (PS3.16 TID 1500), built with highdicom.

The shape is the write-back proposal of interop.md 1.7 (contract section 2, ``Accept:
application/dicom``); the highdicom calls follow interop.md 2.3:

* Enhanced SR (PS3.3 A.35.2), or Comprehensive 3D SR (A.35.13) when a measurement
  keeps SCOORD3D coordinates: each measurement refers to what it was inferred from
  (TID 300 INFERRED FROM, TID 320), its SCOORD / SCOORD3D regions when it kept some
  (a SCOORD only when its image is in the evidence), else its image;
* root TID 1500 with a Device observer whose UID is
  :data:`~service.adapters.sr_context.ASSESSMENT_DEVICE_UID`: the reader recognises
  our own output by it and refuses to re-ingest it;
* per lesion seen at the timepoint a TID 1501 group reusing the lesion's Tracking UID
  and Tracking Identifier (a UID derived from the patient and lesion key when no
  source gave one), TID 1502 Time Point context, Measurement Method (126081, DCM,
  "RECIST 1.1"), Baseline Category (112016, DCM; CID 6145 or NCIt new-lesion codes),
  Tumor State (C96643, NCIt) and the lesion's measurements (TID 300);
* row 12 "Qualitative Evaluations" (C0034375, UMLS): per criterion the Current
  Response (112048, DCM) and Best Overall Response (112049, DCM) in the project
  scheme ``99TR`` (:data:`RESPONSE_CODES`), the target / non-target responses with
  CID 6144 codes 112041-112047 where RECIST defines one, and new-lesion progression;
  each names its criterion by a Measurement Method (370129005, SCT) modifier;
* row 10 "Derived Imaging Measurements" (126011, DCM): per criterion the sum of
  diameters as Diameter (81827009, SCT) with Derivation Total (255619001, SCT).

Patient and General Study modules are copied from the stored DICOM context of the
timepoint (:mod:`service.adapters.sr_context`); the evidence lists the measurement
SR and the images it referenced. Every write gets new Series and SOP Instance UIDs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from io import BytesIO
from typing import Any, Final

import highdicom as hd
import numpy as np
from pydicom import dcmwrite
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from service.adapters.sr_context import ASSESSMENT_DEVICE_UID, PATIENT_STUDY_KEYWORDS
from service.domain.errors import UnsupportedInput
from service.domain.model import (
    Assessment,
    Code,
    Coordinates,
    History,
    LesionObservation,
    LesionRole,
    LesionState,
    Measurement,
    MeasurementKind,
    Response,
    TimepointResponse,
    TrackedLesion,
)

MANUFACTURER: Final = "tumour-response"
SERIES_DESCRIPTION: Final = "Tumour response assessment"
SERIES_NUMBER: Final = 9100

PROJECT: Final = "99TR"

# The project codes (scheme 99TR) this writer uses; the README lists them.
RESPONSE_CODES: Final[dict[Response, Code]] = {
    Response.CR: Code("CR", PROJECT, "Complete Response"),
    Response.PR: Code("PR", PROJECT, "Partial Response"),
    Response.SD: Code("SD", PROJECT, "Stable Disease"),
    Response.PD: Code("PD", PROJECT, "Progressive Disease"),
    Response.NE: Code("NE", PROJECT, "Not Evaluable"),
    Response.NON_CR_NON_PD: Code("NON-CR/NON-PD", PROJECT, "Non-CR/Non-PD"),
    Response.ICR: Code("iCR", PROJECT, "iRECIST Complete Response"),
    Response.IPR: Code("iPR", PROJECT, "iRECIST Partial Response"),
    Response.ISD: Code("iSD", PROJECT, "iRECIST Stable Disease"),
    Response.IUPD: Code("iUPD", PROJECT, "iRECIST Unconfirmed Progressive Disease"),
    Response.ICPD: Code("iCPD", PROJECT, "iRECIST Confirmed Progressive Disease"),
    Response.NON_ICR_NON_IUPD: Code("NON-iCR/NON-iUPD", PROJECT, "Non-iCR/Non-iUPD"),
    Response.OPTIMAL_MORPHOLOGIC: Code("OMR", PROJECT, "Optimal Morphologic Response"),
    Response.PARTIAL_MORPHOLOGIC: Code("PMR", PROJECT, "Partial Morphologic Response"),
    Response.ABSENT_MORPHOLOGIC: Code("AMR", PROJECT, "Absent Morphologic Response"),
}
CRITERION_CODES: Final[dict[str, Code]] = {
    "recist-1.1": Code("126081", "DCM", "RECIST 1.1"),
    "irecist": Code("irecist", PROJECT, "iRECIST"),
    "mrecist": Code("mrecist", PROJECT, "mRECIST"),
    "choi": Code("choi", PROJECT, "Choi"),
    "mchoi": Code("mchoi", PROJECT, "Modified Choi"),
    "chun": Code("chun", PROJECT, "Chun morphologic criteria"),
}
VIABLE_LONG_AXIS: Final = Code("viable-long-axis", PROJECT, "Viable long axis")
TUMOR_STATE_CODES: Final[dict[LesionState, Code]] = {
    LesionState.PRESENT: Code("C25626", "NCIt", "Present"),
    LesionState.ABSENT: Code("C48190", "NCIt", "Absent"),
    LesionState.MERGED: Code("C94525", "NCIt", "Tumor Merged"),
    LesionState.EQUIVOCAL: Code("C86071", "NCIt", "Equivocal"),
    LesionState.UNEQUIVOCAL_PROGRESSION: Code("C123645", "NCIt", "Unequivocal Progression"),
    **{
        state: Code(state.value.lower().replace(" ", "-"), PROJECT, state.value.capitalize())
        for state in (
            LesionState.TOO_SMALL_TO_MEASURE,
            LesionState.NOT_ASSESSED,
            LesionState.INCREASED,
            LesionState.SPLIT,
        )
    },
}

# Standard codes: CID 6145 (and NCIt new-lesion codes), CID 6144, NCIt concepts.
ROLE_CODES: Final[dict[LesionRole, Code]] = {
    LesionRole.TARGET: Code("112074", "DCM", "Target Lesion at Baseline"),
    LesionRole.NON_TARGET: Code("112075", "DCM", "Non-Target Lesion at Baseline"),
    LesionRole.NON_LESION: Code("112076", "DCM", "Non-Lesion at Baseline"),
    LesionRole.NEW: Code("C94522", "NCIt", "New Lesion"),
    LesionRole.NEW_TARGET: Code("C139127", "NCIt", "New Target Lesion"),
    LesionRole.NEW_NON_TARGET: Code("C139126", "NCIt", "New Non-Target Lesion"),
}
TARGET_RESPONSE_CODES: Final[dict[Response, Code]] = {
    Response.CR: Code("112041", "DCM", "Target Lesion Complete Response"),
    Response.PR: Code("112042", "DCM", "Target Lesion Partial Response"),
    Response.PD: Code("112043", "DCM", "Target Lesion Progressive Disease"),
    Response.SD: Code("112044", "DCM", "Target Lesion Stable Disease"),
}
NON_TARGET_RESPONSE_CODES: Final[dict[Response, Code]] = {
    Response.CR: Code("112045", "DCM", "Non-Target Lesion Complete Response"),
    Response.NON_CR_NON_PD: Code(
        "112046", "DCM", "Non-Target Lesion Incomplete Response or Stable Disease"
    ),
    Response.PD: Code("112047", "DCM", "Non-Target Lesion Progressive Disease"),
}
_KIND_CODES: Final[dict[MeasurementKind, Code]] = {
    MeasurementKind.LONG_AXIS: Code("103339001", "SCT", "Long Axis"),
    MeasurementKind.SHORT_AXIS: Code("103340004", "SCT", "Short Axis"),
    MeasurementKind.DIAMETER: Code("81827009", "SCT", "Diameter"),
    MeasurementKind.MEAN_ATTENUATION: Code("112031", "DCM", "Attenuation Coefficient"),
    MeasurementKind.VIABLE_LONG_AXIS: VIABLE_LONG_AXIS,
}
_UNITS: Final = {"mm": codes.UCUM.Millimeter, "[hnsf'U]": codes.UCUM.HounsfieldUnit}
_BASELINE_CATEGORY: Final = Code("112016", "DCM", "Baseline Category")
_TUMOR_STATE: Final = Code("C96643", "NCIt", "Tumor State")
_CURRENT_RESPONSE: Final = Code("112048", "DCM", "Current Response")
_BEST_OVERALL_RESPONSE: Final = Code("112049", "DCM", "Best Overall Response")
_TARGET_RESPONSE: Final = Code("C94534", "NCIt", "Target Response")
_NON_TARGET_RESPONSE: Final = Code("C94535", "NCIt", "Non-target Response")
_NEW_LESION_PROGRESSION: Final = Code("C103420", "NCIt", "New Lesion Progression")
_YES_NO: Final = {True: Code("373066001", "SCT", "Yes"), False: Code("373067005", "SCT", "No")}
_QUALITATIVE_EVALUATIONS: Final = Code("C0034375", "UMLS", "Qualitative Evaluations")
_DERIVED_MEASUREMENTS: Final = Code("126011", "DCM", "Derived Imaging Measurements")
_TOTAL: Final = Code("255619001", "SCT", "Total")
_METHOD: Final = Code("370129005", "SCT", "Measurement Method")
_BASELINE: Final = Code("C1442488", "UMLS", "Baseline")
_POSTTREATMENT: Final = Code("126074", "DCM", "Posttreatment")
_FALLBACK_PROCEDURE: Final = Code("363679005", "SCT", "Imaging procedure")


def write_sr(
    history: History,
    assessments: Sequence[Assessment],
    day: date,
    context: dict[str, Any] | None,
    *,
    preliminary: bool = False,
) -> bytes:
    """The assessment of *history* at *day* as an Enhanced SR (Comprehensive 3D SR when
    coordinates need it) in DICOM Part 10 bytes.

    *context* is the stored DICOM context of the timepoint; without one (a timepoint
    known only from FHIR) there is no patient or study to copy, and
    :class:`UnsupportedInput` is raised. *preliminary* sets PreliminaryFlag.
    """
    if context is None:
        raise UnsupportedInput(
            f"the timepoint {day.isoformat()} has no DICOM source: no SR can be written for it"
        )
    order, timepoint = next(
        (index, tp) for index, tp in enumerate(history.timepoints, start=1) if tp.date == day
    )
    time_point = hd.sr.TimePointContext(
        time_point=day.isoformat(),
        time_point_type=_coded(_BASELINE if order == 1 else _POSTTREATMENT),
        time_point_order=order,
    )
    texts = [
        *context["attributes"].values(),
        *(str(history.lesions[key].identity) for key in timepoint.observations),
        *(site.meaning for o in timepoint.observations.values() if (site := o.site)),
    ]
    evidence = _evidence(context, utf8=not all(text.isascii() for text in texts))
    images = {image.SOPInstanceUID: image.SOPClassUID for image in evidence}
    groups = [
        _lesion_group(history, history.lesions[key], observation, time_point, images)
        for key, observation in timepoint.observations.items()
    ]
    if not groups:
        raise UnsupportedInput(f"no lesion was measured on {day.isoformat()}")
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(
            observer_device_context=hd.sr.ObserverContext(
                observer_type=codes.DCM.Device,
                observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                    uid=ASSESSMENT_DEVICE_UID, name=MANUFACTURER
                ),
            )
        ),
        procedure_reported=[hd.sr.CodedConcept(*code) for code in context["procedure_reported"]]
        or [_coded(_FALLBACK_PROCEDURE)],
        imaging_measurements=groups,
        title=codes.DCM.ImagingMeasurementReport,
    )
    responses = [(assessment.criterion, assessment.at(day)) for assessment in assessments]
    report[0].ContentSequence.extend(_report_level(responses))
    needs_3d = any(
        coordinates.dimensions == 3
        for observation in timepoint.observations.values()
        for m in observation.measurements
        for coordinates in m.provenance.coordinates
    )
    sr = (hd.sr.Comprehensive3DSR if needs_3d else hd.sr.EnhancedSR)(
        evidence=evidence,
        content=report,
        series_instance_uid=hd.UID(),
        series_number=SERIES_NUMBER,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        series_description=SERIES_DESCRIPTION,
        is_complete=True,
        is_final=not preliminary,
        is_verified=False,
    )
    sr.CodingSchemeIdentificationSequence = [_project_scheme()]
    buffer = BytesIO()
    dcmwrite(buffer, sr, enforce_file_format=True)
    return buffer.getvalue()


def _project_scheme() -> Dataset:
    """PS3.3 C.12.1.1.2.1: a private coding scheme is identified in the SOP Common module."""
    item = Dataset()
    item.CodingSchemeDesignator = PROJECT
    item.CodingSchemeName = "tumour-response project codes"
    item.CodingSchemeResponsibleOrganization = MANUFACTURER
    return item


def _coded(code: Code) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(code.value, code.scheme, code.meaning)


def _evidence(context: dict[str, Any], *, utf8: bool) -> list[Dataset]:
    """Stub datasets of the evidence; the first carries the Patient and Study modules
    and the character set (UTF-8 only when a text needs it), which highdicom copies
    into the SR (interop.md 2.3)."""
    attributes: dict[str, str] = context["attributes"]
    found = []
    for reference in context["evidence"]:
        stub = Dataset()
        stub.StudyInstanceUID = reference["study"]
        stub.SeriesInstanceUID = reference["series"]
        stub.SOPInstanceUID = reference["sop"]
        stub.SOPClassUID = reference["sop_class"]
        found.append(stub)
    first = found[0]
    if utf8:
        first.SpecificCharacterSet = "ISO_IR 192"
    for keyword in PATIENT_STUDY_KEYWORDS:
        if keyword in attributes or keyword != "IssuerOfPatientID":
            setattr(first, keyword, attributes.get(keyword, ""))
    return found


def _lesion_group(
    history: History,
    lesion: TrackedLesion,
    observation: LesionObservation,
    time_point: hd.sr.TimePointContext,
    images: dict[str, str],
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    uid = lesion.identity.tracking_uid or observation.identity.tracking_uid
    tracking = hd.sr.TrackingIdentifier(
        identifier=lesion.identity.tracking_id or observation.identity.tracking_id or lesion.key,
        uid=uid or _derived_uid(history, lesion),
    )
    evaluations = [hd.sr.QualitativeEvaluation(_coded(_BASELINE_CATEGORY), _role(lesion))]
    if observation.state is not None:
        evaluations.append(
            hd.sr.QualitativeEvaluation(
                _coded(_TUMOR_STATE), _coded(TUMOR_STATE_CODES[observation.state])
            )
        )
    site = lesion.site or observation.site
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking,
        time_point_context=time_point,
        finding_type=codes.SCT.Lesion,
        method=_coded(CRITERION_CODES["recist-1.1"]),
        finding_sites=[hd.sr.FindingSite(_coded(site))] if site is not None else None,
        measurements=[_measurement(m, images) for m in observation.measurements],
        qualitative_evaluations=evaluations,
    )
    # TID 1501 row 5 relates the method by HAS CONCEPT MOD; highdicom writes CONTAINS.
    for item in group[0].ContentSequence:
        if item.name == _coded(_METHOD):
            item.RelationshipType = hd.sr.RelationshipTypeValues.HAS_CONCEPT_MOD.value
    return group


def _derived_uid(history: History, lesion: TrackedLesion) -> str:
    """A stable Tracking UID for a lesion no source gave one (a viewer's label only)."""
    patient = history.patient
    return str(generate_uid(entropy_srcs=["lesion", patient.system, patient.value, lesion.key]))


def _role(lesion: TrackedLesion) -> hd.sr.CodedConcept:
    return _coded(ROLE_CODES[lesion.role])


def _measurement(measurement: Measurement, images: dict[str, str]) -> hd.sr.Measurement:
    kind, image_uid = measurement.kind, measurement.provenance.referenced_sop_uid
    regions = [
        region
        for coordinates in measurement.provenance.coordinates
        if (region := _region(coordinates, images)) is not None
    ]
    source = (
        [hd.sr.SourceImageForMeasurement(images[image_uid], image_uid)]
        if image_uid in images and not regions
        else None
    )
    return hd.sr.Measurement(
        name=_coded(_KIND_CODES[kind]),
        value=float(measurement.value),
        unit=_UNITS[kind.unit],
        derivation=codes.SCT.Mean if kind is MeasurementKind.MEAN_ATTENUATION else None,
        referenced_images=source,
        referenced_coordinates=regions or None,
    )


def _region(
    coordinates: Coordinates, images: dict[str, str]
) -> hd.sr.CoordinatesForMeasurement | hd.sr.CoordinatesForMeasurement3D | None:
    """TID 320 SCOORD (with its SELECTED FROM image) or SCOORD3D, None when it cannot
    be written: a SCOORD whose image is not in the evidence, or a shape highdicom
    refuses (a one-point MULTIPOINT, an open POLYGON, a non-planar ELLIPSE)."""
    points = np.array(coordinates.points).reshape(-1, coordinates.dimensions)
    try:
        if coordinates.frame_of_reference_uid is not None:
            return hd.sr.CoordinatesForMeasurement3D(
                coordinates.graphic_type, points, coordinates.frame_of_reference_uid
            )
        image = coordinates.referenced_sop_uid
        if image not in images:
            return None
        return hd.sr.CoordinatesForMeasurement(
            coordinates.graphic_type, points, hd.sr.SourceImageForRegion(images[image], image)
        )
    except ValueError:
        return None


def _report_level(responses: Sequence[tuple[str, TimepointResponse]]) -> list[Dataset]:
    """TID 1500 rows 10 and 12: the sums and the responses, per criterion."""
    sums: list[Dataset] = []
    evaluations: list[Dataset] = []
    for criterion, response in responses:
        method = _coded(CRITERION_CODES[criterion])
        if response.sums is not None and response.sums.current_mm is not None:
            sums.append(_sum_of_diameters(response.sums.current_mm, method))
        evaluations.extend(
            _evaluation(name, value, method) for name, value in _verdicts(criterion, response)
        )
    containers = []
    if sums:
        containers.append(_container(_DERIVED_MEASUREMENTS, sums))
    if evaluations:
        containers.append(_container(_QUALITATIVE_EVALUATIONS, evaluations))
    return containers


def _verdicts(criterion: str, response: TimepointResponse) -> list[tuple[Code, Code]]:
    """(concept, value) of each verdict; none at baseline."""
    if response.is_baseline:
        return []
    recist = criterion == "recist-1.1"
    found = []
    if response.overall is not None:
        found.append((_CURRENT_RESPONSE, RESPONSE_CODES[response.overall]))
    if response.best_overall is not None:
        found.append((_BEST_OVERALL_RESPONSE, RESPONSE_CODES[response.best_overall]))
    for concept, verdict, standard in (
        (_TARGET_RESPONSE, response.target, TARGET_RESPONSE_CODES),
        (_NON_TARGET_RESPONSE, response.non_target, NON_TARGET_RESPONSE_CODES),
    ):
        if verdict is not None:
            code = standard.get(verdict) if recist else None
            found.append((concept, code or RESPONSE_CODES[verdict]))
    found.append((_NEW_LESION_PROGRESSION, _YES_NO[response.new_lesions]))
    return found


def _evaluation(name: Code, value: Code, method: hd.sr.CodedConcept) -> Dataset:
    item = hd.sr.CodeContentItem(
        name=_coded(name),
        value=_coded(value),
        relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
    )
    item.ContentSequence = DicomSequence([_method_modifier(method)])
    return item


def _sum_of_diameters(value: Decimal, method: hd.sr.CodedConcept) -> Dataset:
    item = hd.sr.NumContentItem(
        name=_coded(_KIND_CODES[MeasurementKind.DIAMETER]),
        value=float(value),
        unit=codes.UCUM.Millimeter,
        relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
    )
    item.ContentSequence = DicomSequence(
        [
            hd.sr.CodeContentItem(
                name=codes.DCM.Derivation,
                value=_coded(_TOTAL),
                relationship_type=hd.sr.RelationshipTypeValues.HAS_CONCEPT_MOD,
            ),
            _method_modifier(method),
        ]
    )
    return item


def _method_modifier(method: hd.sr.CodedConcept) -> Dataset:
    return hd.sr.CodeContentItem(
        name=_coded(_METHOD),
        value=method,
        relationship_type=hd.sr.RelationshipTypeValues.HAS_CONCEPT_MOD,
    )


def _container(name: Code, items: list[Dataset]) -> Dataset:
    container = hd.sr.ContainerContentItem(
        name=_coded(name), relationship_type=hd.sr.RelationshipTypeValues.CONTAINS
    )
    container.ContentSequence = DicomSequence(items)
    return container
