"""TID 1500 Measurement Reports written by dcmqi (PyPI ``dcmqi``), as 3D Slicer's
QuantitativeReporting writes them (interop.md 2.3).

dcmqi's ``tid1500writer`` writes one TID 1411 Volumetric ROI group per measurement,
each pointing at a segment of a DICOM SEG (PS3.3 A.51) by an IMAGE (121191, DCM)
"Referenced Segment" item and at the segmented series by a UIDREF (121232, DCM)
"Source series for segmentation" item. So :func:`dcmqi_sr` builds, under a working
directory:

1. a synthetic CT series (PS3.3 A.3 CT Image IOD, written with pydicom): 3 axial
   slices of 16 x 16 pixels, 1 mm pixels and 2.5 mm slices, LPS identity orientation;
2. a labelmap on the same grid, written as NRRD (teem's NRRD0004: a text header and
   raw little-endian voxels, x fastest), one label per lesion;
3. a DICOM SEG of that labelmap by ``itkimage2segimage``, from JSON metadata in
   dcmqi's seg-schema (one segment per label, Finding Site as Segmented Property);
4. the SR by ``tid1500writer``, from JSON metadata in dcmqi's sr-tid1500-schema: one
   group per lesion with Tracking Identifier and a Tracking UID stable across
   timepoints, Finding "Lesion", Finding Site liver (10200004, SCT), Measurement
   Method RECIST 1.1, a Long Axis (103339001, SCT) NUM in mm and a Baseline Category
   (112016, DCM) "Target Lesion at Baseline" qualitative evaluation.

The SEG and the SR take the patient and study modules from the CT. UIDs are
deterministic (``generate_uid(entropy_srcs=...)``) except those dcmqi generates.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian, generate_uid

SIZE, SLICES = 16, 3  # voxels per row and column, slices
PIXEL_MM, SLICE_MM = 1.0, 2.5
_TOOL_PATH = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def tool(name: str) -> str | None:
    """The dcmqi executable *name* (venv scripts first), or ``None`` when absent."""
    return shutil.which(name, path=_TOOL_PATH)


def _code(value: str, scheme: str, meaning: str) -> dict[str, str]:
    return {"CodeValue": value, "CodingSchemeDesignator": scheme, "CodeMeaning": meaning}


LIVER = _code("10200004", "SCT", "Liver")
LESION = _code("52988006", "SCT", "Lesion")
LONG_AXIS = _code("103339001", "SCT", "Long Axis")
MILLIMETRE = _code("mm", "UCUM", "millimeter")
RECIST_11 = _code("126081", "DCM", "RECIST 1.1")
BASELINE_CATEGORY = _code("112016", "DCM", "Baseline Category")
TARGET = _code("112074", "DCM", "Target Lesion at Baseline")


def _uid(*parts: str) -> UID:
    return generate_uid(entropy_srcs=list(parts))


def ct_series(directory: Path, patient_id: str, day: str) -> list[Path]:
    """Write a 3-slice CT series of *patient_id* on *day*; return the file paths."""
    directory.mkdir(parents=True, exist_ok=True)
    study, series = _uid("ct-study", patient_id, day), _uid("ct-series", patient_id, day)
    frame = _uid("ct-frame", patient_id, day)
    paths = []
    for index in range(SLICES):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = _uid("ct", patient_id, day, str(index))
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, ds.file_meta.MediaStorageSOPInstanceUID
        ds.PatientName, ds.PatientID = "Test^Ann", patient_id
        ds.PatientBirthDate, ds.PatientSex = "19600101", "F"
        ds.StudyInstanceUID, ds.StudyDate, ds.StudyTime = study, day, "120000"
        ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "1", f"A{day}", ""
        ds.SeriesInstanceUID, ds.SeriesNumber, ds.Modality = series, 1, "CT"
        ds.PatientPosition, ds.BodyPartExamined = "HFS", "ABDOMEN"
        ds.SeriesDate = ds.ContentDate = ds.AcquisitionDate = day
        ds.SeriesTime = ds.ContentTime = ds.AcquisitionTime = "120000"
        ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = frame, ""
        ds.Manufacturer, ds.AcquisitionNumber = "tumour-response tests", 1
        ds.InstanceNumber = index + 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImagePositionPatient = [0.0, 0.0, index * SLICE_MM]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing, ds.SliceThickness = [PIXEL_MM, PIXEL_MM], SLICE_MM
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows = ds.Columns = SIZE
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.KVP = -1024, 1, 120
        ds.PixelData = np.full((SIZE, SIZE), 1064, dtype="<i2").tobytes()  # 40 HU
        path = directory / f"{index + 1:02d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def labelmap_nrrd(path: Path, labels: int) -> Path:
    """A labelmap on the CT grid: label *n* fills a 2 x 2 block on every slice."""
    voxels = np.zeros((SLICES, SIZE, SIZE), dtype=np.uint8)  # z, y, x: x varies fastest
    for label in range(1, labels + 1):
        voxels[:, 2 * label : 2 * label + 2, 2 * label : 2 * label + 2] = label
    header = (
        "NRRD0004\ntype: unsigned char\ndimension: 3\nspace: left-posterior-superior\n"
        f"sizes: {SIZE} {SIZE} {SLICES}\n"
        f"space directions: ({PIXEL_MM},0,0) (0,{PIXEL_MM},0) (0,0,{SLICE_MM})\n"
        "kinds: domain domain domain\nendian: little\nencoding: raw\n"
        "space origin: (0,0,0)\n\n"
    )
    path.write_bytes(header.encode("ascii") + voxels.tobytes())
    return path


def _run(*args: str) -> None:
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{Path(args[0]).name} failed: {result.stdout}\n{result.stderr}")


def segmentation(directory: Path, images: list[Path], names: list[str]) -> Path:
    """A DICOM SEG over *images* with one liver-lesion segment per name (label order)."""
    segments = [
        {
            "labelID": label,
            "SegmentDescription": name,
            "SegmentedPropertyCategoryCodeSequence": _code(
                "49755003", "SCT", "Morphologically Altered Structure"
            ),
            "SegmentedPropertyTypeCodeSequence": LESION,
            "AnatomicRegionSequence": LIVER,
            "SegmentAlgorithmType": "MANUAL",
            "recommendedDisplayRGBValue": [221, 130, 101],
        }
        for label, name in enumerate(names, start=1)
    ]
    metadata = directory / "seg.json"
    metadata.write_text(
        json.dumps(
            {
                "ContentCreatorName": "Reader^Rad",
                "ClinicalTrialSeriesID": "1",
                "ClinicalTrialTimePointID": "1",
                "ClinicalTrialCoordinatingCenterName": "tumour-response",
                "SeriesDescription": "Lesions",
                "SeriesNumber": "300",
                "InstanceNumber": "1",
                "segmentAttributes": [segments],
            }
        )
    )
    output = directory / "seg.dcm"
    _run(
        str(tool("itkimage2segimage")),
        "--inputImageList",
        str(labelmap_nrrd(directory / "labels.nrrd", len(names))),
        "--inputDICOMList",
        ",".join(str(path) for path in images),
        "--inputMetadata",
        str(metadata),
        "--outputDICOM",
        str(output),
    )
    return output


def _group(patient_id: str, segment: int, name: str, value: int, seg: Dataset) -> dict[str, Any]:
    return {
        "TrackingIdentifier": name,
        "TrackingUniqueIdentifier": _uid("dcmqi-tracking", patient_id, name),
        "ReferencedSegment": segment,
        "SourceSeriesForImageSegmentation": str(seg.ReferencedSeriesSequence[0].SeriesInstanceUID),
        "segmentationSOPInstanceUID": str(seg.SOPInstanceUID),
        "MeasurementMethod": RECIST_11,
        "Finding": LESION,
        "FindingSite": LIVER,
        "measurementItems": [{"value": str(value), "quantity": LONG_AXIS, "units": MILLIMETRE}],
        "qualitativeEvaluations": [{"conceptCode": BASELINE_CATEGORY, "conceptValue": TARGET}],
    }


def dcmqi_sr(
    directory: Path, patient_id: str, day: str, time_point: str, lesions: dict[str, int]
) -> Path:
    """The TID 1500 SR tid1500writer writes for *lesions* (name -> long axis, mm) at the
    TID 1502 *time_point* of the study of *patient_id* on *day*: ``directory/sr.dcm``,
    beside the SEG its groups reference, ``directory/seg.dcm``."""
    images = ct_series(directory / "ct", patient_id, day)
    seg_path = segmentation(directory, images, list(lesions))
    seg = dcmread(seg_path, stop_before_pixels=True)
    metadata = directory / "sr.json"
    metadata.write_text(
        json.dumps(
            {
                "SeriesDescription": "Measurements",
                "SeriesNumber": "1001",
                "InstanceNumber": "1",
                "compositeContext": [seg_path.name],
                "imageLibrary": [path.name for path in images],
                "observerContext": {"ObserverType": "PERSON", "PersonObserverName": "Reader^Rad"},
                "VerificationFlag": "UNVERIFIED",
                "CompletionFlag": "COMPLETE",
                "activitySession": "1",
                "timePoint": time_point,
                "procedureReported": _code("25045-6", "LN", "CT unspecified body region"),
                "Measurements": [
                    _group(patient_id, segment, name, value, seg)
                    for segment, (name, value) in enumerate(lesions.items(), start=1)
                ],
            }
        )
    )
    output = directory / "sr.dcm"
    _run(
        str(tool("tid1500writer")),
        "--inputMetadata",
        str(metadata),
        "--inputImageLibraryDirectory",
        str(images[0].parent),
        "--inputCompositeContextDirectory",
        str(directory),
        "--outputDICOM",
        str(output),
    )
    return output
