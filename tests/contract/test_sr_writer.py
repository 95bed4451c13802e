"""The assessment SR writer (interop.md 1.7, contract section 2) against real validators.

Every SR written here is checked by dciodvfy (dicom3tools), dsrdump (DCMTK) and
PixelMed's DicomSRValidator when they are installed, and re-read with highdicom and
with our own reader, which must refuse it.

Accepted validator messages (anything else fails the test):

* dciodvfy ``Unrecognized defined term <99TR> ... Coding Scheme Designator``: 99TR is
  a private scheme (PS3.16 section 8, "99" prefix), declared in
  CodingSchemeIdentificationSequence; dciodvfy knows only the standard designators.
* PixelMed ``Content Item not in template`` for Baseline Category (112016) in a TID
  1501 group and for the report-level items under Qualitative Evaluations and Derived
  Imaging Measurements: these rows are open ("any concept") in TID 1500/1501, and the
  Measurement Method modifiers name the criterion (interop.md 1.7, a proposal).
* PixelMed ``Internal Error: Template 1420 ... CID 7465 ... Concept Name CID is empty
  or missing``: the validator's compiled TID 1420 prints it unconditionally whenever
  it visits a Derived Imaging Measurements container (its CID 7465 table is empty in
  the 20220618 build); it is a defect of the validator, not of the SR.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from io import BytesIO
from pathlib import Path
from typing import Any

import highdicom as hd
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from service.adapters import sr_context, sr_reader, sr_writer
from service.domain.criteria import CRITERIA
from service.domain.errors import UnsupportedInput
from service.domain.history import build_history
from service.domain.model import AssessmentParameters, LesionIdentity, TimepointReport
from tests.sr_factory import REGION_2D, REGION_3D, LesionSpec, make_sr

PIXELMED_JAR = Path("/usr/share/java/pixelmed.jar")
# PixelMed's XSLT passes the JDK's default XPath limits; lifting them is its documented fix.
JAVA_XPATH_LIMITS = [
    "-Djdk.xml.xpathExprOpLimit=0",
    "-Djdk.xml.xpathExprGrpLimit=0",
    "-Djdk.xml.xpathTotalOpLimit=0",
]
ACCEPTED_DCIODVFY = re.compile(r"Unrecognized defined term <99TR> .*Coding Scheme Designator")
ACCEPTED_PIXELMED_ITEMS = re.compile(
    r'\(112016,DCM,"Baseline Category"\)|Qualitative Evaluations|Derived Imaging Measurements'
)
PIXELMED_TID_1420_DEFECT = re.compile(
    r"Internal Error: \s*Template 1420 MeasurementsDerivedFromMultipleROIMeasurements/"
    r"\[Row 1\] NUM CID 7465\s*: Concept Name CID is empty or missing - \s*7465\s*"
)


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def dciodvfy_problems(path: Path) -> list[str]:
    """dciodvfy's Error lines and unaccepted Warning lines (it writes to stderr)."""
    result = _run(["dciodvfy", str(path)])
    lines = (result.stdout + result.stderr).splitlines()
    return [
        line
        for line in lines
        if line.startswith("Error")
        or (line.startswith("Warning") and not ACCEPTED_DCIODVFY.search(line))
    ]


def dsrdump_problems(path: Path) -> list[str]:
    """A non-zero exit or any E:/W: line of dsrdump."""
    result = _run(["dsrdump", str(path)])
    found = [line for line in result.stderr.splitlines() if line.startswith(("E:", "F:", "W:"))]
    return found + ([f"exit status {result.returncode}"] if result.returncode else [])


def pixelmed_problems(path: Path) -> list[str]:
    """Error lines of DicomSRValidator, less the known TID 1420 defect, and warnings
    about items other than the accepted open-row ones."""
    command = ["java", *JAVA_XPATH_LIMITS, "-cp", str(PIXELMED_JAR)]
    result = _run([*command, "com.pixelmed.validate.DicomSRValidator", str(path)])
    output = PIXELMED_TID_1420_DEFECT.sub("", result.stdout + result.stderr)
    assert "Root Template TID_1500" in output, output
    assert "IOD validation complete" in output, output
    return [
        line
        for line in output.splitlines()
        if "Error" in line
        or "Exception" in line
        or (line.startswith("Warning") and not ACCEPTED_PIXELMED_ITEMS.search(line))
    ]


@dataclass(frozen=True)
class Validator:
    name: str
    available: bool
    problems: Any


VALIDATORS = [
    Validator("dciodvfy", shutil.which("dciodvfy") is not None, dciodvfy_problems),
    Validator("dsrdump", shutil.which("dsrdump") is not None, dsrdump_problems),
    Validator(
        "DicomSRValidator",
        shutil.which("java") is not None and PIXELMED_JAR.exists(),
        pixelmed_problems,
    ),
]


def assert_valid(path: Path) -> None:
    """Run every installed validator on *path*; fail on any problem."""
    for validator in VALIDATORS:
        if validator.available:
            assert validator.problems(path) == [], validator.name


def two_timepoints(
    frame_of_reference_uid: str | None = None, **context_edits: str
) -> tuple[list[TimepointReport], list[Dataset]]:
    """Baseline T1 60 + T2 40 mm, follow-up 42 + 28 mm (RECIST PR, sum 70 mm); T1's
    region is a SCOORD3D in *frame_of_reference_uid* when given."""
    datasets = []
    for day, (t1, t2) in (("20240101", (60, 40)), ("20240301", (42, 28))):
        ds = make_sr(
            patient_id="PAT-W",
            study_date=day,
            issuer="HOSP-A",
            lesions=[
                LesionSpec(
                    "T1",
                    long_axis_mm=t1,
                    short_axis_mm=t1 / 2,
                    role="target",
                    frame_of_reference_uid=frame_of_reference_uid,
                ),
                LesionSpec("T2", long_axis_mm=t2, role="target", site="lung"),
            ],
        )
        for keyword, value in context_edits.items():
            setattr(ds, keyword, value)
        datasets.append(ds)
    return [sr_reader.read_sr(ds) for ds in datasets], datasets


def write(reports: list[TimepointReport], source: Dataset, day: date | None = None) -> bytes:
    history = build_history(reports)
    assessments = [CRITERIA["recist-1.1"](history, AssessmentParameters())]
    return sr_writer.write_sr(
        history, assessments, day or reports[-1].date, sr_context.extract(source)
    )


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Dataset]:
    reports, datasets = two_timepoints()
    path = tmp_path_factory.mktemp("sr") / "assessment.dcm"
    path.write_bytes(write(reports, datasets[-1]))
    return path, datasets[-1]


def content(ds: Dataset) -> list[tuple[str, Dataset]]:
    """Every content item under *ds*, with the meaning of its concept name."""
    found = []
    for item in ds.get("ContentSequence") or ():
        names = item.get("ConceptNameCodeSequence")
        found.append((names[0].CodeMeaning if names else "", item))
        found.extend(content(item))
    return found


def values(ds: Dataset, meaning: str) -> list[Any]:
    found: list[Any] = []
    for name, item in content(ds):
        if name != meaning:
            continue
        if item.ValueType == "CODE":
            code = item.ConceptCodeSequence[0]
            found.append((code.CodeValue, code.CodingSchemeDesignator))
        elif item.ValueType == "NUM":
            found.append(Decimal(str(item.MeasuredValueSequence[0].NumericValue)))
        elif item.ValueType == "UIDREF":
            found.append(item.UID)
        elif item.ValueType == "TEXT":
            found.append(item.TextValue)
    return found


@pytest.mark.parametrize("validator", VALIDATORS, ids=lambda v: v.name)
def test_the_written_sr_passes_the_validator(
    written: tuple[Path, Dataset], validator: Validator
) -> None:
    if not validator.available:
        pytest.skip(f"{validator.name} is not installed (bash tests/tools/install.sh)")
    assert validator.problems(written[0]) == []


def test_patient_and_study_are_copied_and_the_instance_is_new(
    written: tuple[Path, Dataset],
) -> None:
    path, source = written
    sr = dcmread(path)
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.22"  # Enhanced SR: SCOORD only
    for keyword in sr_context.PATIENT_STUDY_KEYWORDS:
        assert sr.get(keyword) == source.get(keyword), keyword
    assert sr.IssuerOfPatientID == "HOSP-A"
    assert sr.SOPInstanceUID != source.SOPInstanceUID
    assert sr.SeriesInstanceUID != source.SeriesInstanceUID
    evidence = {
        sop.ReferencedSOPInstanceUID
        for study in sr.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for sop in series.ReferencedSOPSequence
    }
    assert source.SOPInstanceUID in evidence
    assert len(evidence) == 2  # the measurement SR and the CT image it references


def test_lesion_groups_reuse_tracking_and_carry_recist_content(
    written: tuple[Path, Dataset],
) -> None:
    path, source = written
    sr = dcmread(path)
    assert values(sr, "Tracking Unique Identifier") == values(source, "Tracking Unique Identifier")
    assert values(sr, "Tracking Identifier") == ["T1", "T2"]
    assert values(sr, "Long Axis") == [42, 28]
    assert values(sr, "Short Axis") == [21]
    assert values(sr, "Time Point") == ["2024-03-01", "2024-03-01"]
    assert values(sr, "Time Point Order") == [2, 2]
    assert values(sr, "Baseline Category") == [("112074", "DCM")] * 2
    methods = values(sr, "Measurement Method")
    assert methods and set(methods) == {("126081", "DCM")}
    assert values(sr, "Finding Site") == [("10200004", "SCT"), ("39607008", "SCT")]


def regions(ds: Dataset) -> list[tuple[str, str, tuple[float, ...], str]]:
    """(measurement, value type, points, image SOP or Frame of Reference UID) of every
    SCOORD / SCOORD3D a NUM was INFERRED FROM."""
    found = []
    for name, item in content(ds):
        for child in item.get("ContentSequence") or () if item.ValueType == "NUM" else ():
            if child.ValueType in ("SCOORD", "SCOORD3D"):
                assert child.RelationshipType == "INFERRED FROM"
                where = (
                    child.ReferencedFrameOfReferenceUID
                    if child.ValueType == "SCOORD3D"
                    else child.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
                )
                found.append((name, child.ValueType, tuple(child.GraphicData), where))
    return found


def test_measurements_refer_to_the_coordinates_they_were_inferred_from(
    written: tuple[Path, Dataset],
) -> None:
    path, source = written
    image = source.CurrentRequestedProcedureEvidenceSequence[0]
    image_uid = next(
        sop.ReferencedSOPInstanceUID
        for series in image.ReferencedSeriesSequence
        for sop in series.ReferencedSOPSequence
        if sop.ReferencedSOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
    )
    points = tuple(value for point in REGION_2D for value in point)
    assert regions(dcmread(path)) == [
        ("Long Axis", "SCOORD", points, image_uid),
        ("Short Axis", "SCOORD", points, image_uid),
        ("Long Axis", "SCOORD", points, image_uid),
    ]


def test_scoord3d_coordinates_make_a_valid_comprehensive_3d_sr(tmp_path: Path) -> None:
    reports, datasets = two_timepoints(frame_of_reference_uid="1.2.826.0.1.3680043.2.77")
    path = tmp_path / "3d.dcm"
    path.write_bytes(write(reports, datasets[-1]))
    sr = dcmread(path)
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    points_3d = tuple(value for point in REGION_3D for value in point)
    found = regions(sr)
    assert found[:2] == [
        ("Long Axis", "SCOORD3D", points_3d, "1.2.826.0.1.3680043.2.77"),
        ("Short Axis", "SCOORD3D", points_3d, "1.2.826.0.1.3680043.2.77"),
    ]
    assert [(name, kind) for name, kind, _points, _where in found[2:]] == [("Long Axis", "SCOORD")]
    assert_valid(path)


def test_report_level_responses_and_sum(written: tuple[Path, Dataset]) -> None:
    sr = dcmread(written[0])
    assert values(sr, "Current Response") == [("PR", "99TR")]
    assert values(sr, "Best Overall Response") == [("PR", "99TR")]
    assert values(sr, "Target Response") == [("112042", "DCM")]
    assert values(sr, "New Lesion Progression") == [("373067005", "SCT")]
    assert values(sr, "Diameter") == [70]
    assert sr.CodingSchemeIdentificationSequence[0].CodingSchemeDesignator == "99TR"


def test_highdicom_reads_the_written_sr(written: tuple[Path, Dataset]) -> None:
    report = hd.sr.srread(written[0]).content
    assert isinstance(report, hd.sr.MeasurementReport)
    groups = report.get_image_measurement_groups()
    assert [g.tracking_identifier for g in groups] == ["T1", "T2"]
    assert [g.method for g in groups] == [hd.sr.CodedConcept("126081", "DCM", "RECIST 1.1")] * 2
    long_axes = [
        m.value
        for g in groups
        for m in g.get_measurements(name=hd.sr.CodedConcept("103339001", "SCT", "Long Axis"))
    ]
    assert long_axes == [42.0, 28.0]


def test_our_reader_refuses_our_own_output(written: tuple[Path, Dataset]) -> None:
    dataset = sr_reader.parse_dicom(written[0].read_bytes())
    with pytest.raises(UnsupportedInput, match="assessment written by tumour-response"):
        sr_reader.read_sr(dataset)


def test_the_baseline_sr_has_sums_but_no_verdicts(tmp_path: Path) -> None:
    reports, datasets = two_timepoints()
    path = tmp_path / "baseline.dcm"
    path.write_bytes(write(reports, datasets[0], day=reports[0].date))
    sr = dcmread(path)
    assert values(sr, "Diameter") == [100]
    assert values(sr, "Current Response") == []
    assert values(sr, "Time Point Type") == [("C1442488", "UMLS")] * 2
    assert_valid(path)


def test_non_ascii_names_are_copied_in_utf8(tmp_path: Path) -> None:
    reports, datasets = two_timepoints(
        SpecificCharacterSet="ISO_IR 100", PatientName="Müller^Jürgen"
    )
    path = tmp_path / "utf8.dcm"
    path.write_bytes(write(reports, datasets[-1]))
    sr = dcmread(path)
    assert sr.SpecificCharacterSet == "ISO_IR 192"
    assert str(sr.PatientName) == "Müller^Jürgen"
    for validator in VALIDATORS[:1]:  # dsrdump warns that its VR checker skips UTF-8
        if validator.available:
            assert validator.problems(path) == []


def test_a_lesion_known_by_label_only_gets_a_stable_tracking_uid() -> None:
    reports, datasets = two_timepoints()
    labelled = [
        replace(
            report,
            lesions=tuple(
                replace(lesion, identity=LesionIdentity(tracking_id=lesion.identity.tracking_id))
                for lesion in report.lesions
            ),
        )
        for report in reports
    ]
    first = dcmread(BytesIO(write(labelled, datasets[-1])))
    again = dcmread(BytesIO(write(labelled, datasets[-1])))
    uids = values(first, "Tracking Unique Identifier")
    assert len(set(uids)) == 2
    assert set(uids).isdisjoint(values(datasets[-1], "Tracking Unique Identifier"))
    assert uids == values(again, "Tracking Unique Identifier")
    assert first.SOPInstanceUID != again.SOPInstanceUID


def test_a_timepoint_without_dicom_context_cannot_be_written() -> None:
    reports, _datasets = two_timepoints()
    history = build_history(reports)
    assessments = [CRITERIA["recist-1.1"](history, AssessmentParameters())]
    with pytest.raises(UnsupportedInput, match="no DICOM source"):
        sr_writer.write_sr(history, assessments, reports[-1].date, None)


def test_context_extraction_lists_the_sr_and_its_images() -> None:
    _reports, datasets = two_timepoints()
    context = sr_context.extract(datasets[0])
    assert context["attributes"]["PatientID"] == "PAT-W"
    assert context["attributes"]["IssuerOfPatientID"] == "HOSP-A"
    assert context["evidence"][0]["sop"] == datasets[0].SOPInstanceUID
    assert [ref["sop_class"] for ref in context["evidence"]] == [
        "1.2.840.10008.5.1.4.1.1.88.34",  # the SR itself
        "1.2.840.10008.5.1.4.1.1.2",  # the CT image it measured on
    ]
    assert context["procedure_reported"] == [["25045-6", "LN", "CT unspecified body region"]]
