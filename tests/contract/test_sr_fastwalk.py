"""The encoded-bytes reads of service/adapters/sr_fastwalk.py (the content tree walk,
the top-level elements of ``Header``) against pydicom, which they replace:
differential tests on real SRs and their byte mutants.

The property: ``read_sr`` and ``sr_context.extract`` with the fast reads give the
report and context they give without them (the pydicom path), or ``read_sr`` raises
the same domain error class. Reports compare whole, so each measurement's provenance
coordinates (SCOORD / SCOORD3D) are compared too; mutants also overwrite the FL
values of GraphicData and the text of top-level elements. The fast reads may fall
back to pydicom; on the well-formed Explicit VR Little Endian seeds they must not.
"""

from __future__ import annotations

import math
import re
import shutil
import struct
import subprocess
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from pydicom import config
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import ImplicitVRLittleEndian

from service.adapters import sr_context, sr_fastwalk, sr_reader
from service.domain.errors import DomainError, TooCostly
from service.domain.model import TimepointReport
from tests.contract.test_producers import TIMEPOINTS, dsr_xml
from tests.sr_factory import LesionSpec, make_sr, sr_bytes

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted((ROOT / "tests" / "data" / "sr").glob("*.dcm")) + sorted(
    (ROOT / "examples").glob("*.dcm")
)
EVERY_FEATURE = [
    LesionSpec("T1", 21.5, 12, role="target", site="liver", mean_hu=40, viable_mm=15),
    LesionSpec("T2", 33, role="target", site="lung", tracking_uid="1.2.826.0.1.3680043.2.1"),
    LesionSpec("N1", 14, 11, role="target", site="lymph node"),
    LesionSpec("NT1", role="non-target", state="ABSENT", findings=(("necrosis", "new"),)),
    LesionSpec("T3", role="target", state="MERGED", merged_into="T1"),
    LesionSpec("T4", role="target", state="TOO SMALL TO MEASURE"),
    LesionSpec("NEW1", 8, role="new", site="liver"),
]
FACTORY = [
    sr_bytes(make_sr(patient_id="FAST-1", study_date="20240105", lesions=EVERY_FEATURE)),
    sr_bytes(
        make_sr(
            patient_id="FAST-2",
            study_date="20240301",
            lesions=EVERY_FEATURE[:3],
            issuer="HOSP",
            preliminary=True,
        )
    ),
    sr_bytes(make_sr(patient_id="FAST-3", study_date="20240401", lesions=[LesionSpec("T1", 9)])),
    sr_bytes(
        make_sr(
            patient_id="FAST-8",
            study_date="20240501",
            lesions=[
                LesionSpec("T1", 12, 8, frame_of_reference_uid="1.2.826.0.1.3680043.2.1125.8"),
                LesionSpec("T2", 20, mean_hu=35),
            ],
        )
    ),
]
SEEDS = [path.read_bytes() for path in FILES] + FACTORY
BOUNDARIES = (0, 1, 0x5C, 0x7F, 0x80, 0xFF)
# Bytes that keep a value ASCII yet change what it says: digits, signs, padding,
# the value delimiter, letters.
VALUE_BYTES = b"0123456789.+-eE \\\x00ACDMNTUX"
LENGTHS = (0, 1, 2, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFE, 0xFFFFFFFF)
# FL values: NaN, infinities, signed zero, the largest float32, a subnormal.
FLOATS = [
    struct.pack("<f", value) for value in (math.nan, math.inf, -math.inf, -0.0, 3.4028235e38, 1e-45)
]
# Mostly same-length value edits, which keep the structure and so reach the walk.
STRUCTURAL = ("flip", "byte", "insert", "delete", "length", "cut")
OPERATIONS = ("char",) * 10 + ("header",) * 3 + ("float",) * 3 + STRUCTURAL
# Bytes that change how a top-level value reads: PersonName groups and components.
HEADER_BYTES = VALUE_BYTES + b"=^"
_GRAPHIC_DATA = re.compile(rb"\x70\x00\x22\x00FL")  # (0070,0022) FL, explicit VR LE


def _text_positions(seed: bytes, header: bool = False) -> list[int]:
    """Offsets inside runs of four or more printable bytes of the content tree, or of
    the top-level elements before it (*header*): mostly values (element headers are
    two VR letters between binary fields)."""
    tree = seed.find(b"\x40\x00\x30\xa7")
    # The data set starts after the File Meta Information Group Length's 144 bytes
    # (preamble, prefix, element) and the length it holds.
    meta_end = 144 + struct.unpack_from("<I", seed, 140)[0]
    start, end = (meta_end, tree) if header else (tree, len(seed))
    runs = re.finditer(rb"[\x20-\x7e]{4,}", seed[start:end])
    return [start + at for run in runs for at in range(run.start(), run.end())]


def _float_positions(seed: bytes) -> list[int]:
    """Offsets of the 4-byte values of every GraphicData (the coordinates)."""
    found: list[int] = []
    for header in _GRAPHIC_DATA.finditer(seed):
        start = header.end() + 2
        (length,) = struct.unpack_from("<H", seed, header.end())
        found.extend(range(start, start + length - 3, 4))
    return found


MUTANT_SEEDS = [seed for seed in SEEDS if b"\x40\x00\x30\xa7" in seed]  # SRs only
TEXT_POSITIONS = [_text_positions(seed) for seed in MUTANT_SEEDS]
HEADER_POSITIONS = [_text_positions(seed, header=True) for seed in MUTANT_SEEDS]
FLOAT_POSITIONS = [_float_positions(seed) for seed in MUTANT_SEEDS]


def read_step(data: bytes, fast: bool) -> tuple[TimepointReport, Any] | type[Exception]:
    """``parse_dicom`` + ``read_sr`` + ``sr_context.extract`` of *data*: the report and
    the context, or the class of the domain error (of what extract raises on a mutant
    that pydicom cannot read)."""
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's value warnings, alike on both paths
        if not fast:  # neither the content walk nor Header reads bytes
            patch.setattr(sr_fastwalk, "_plain", lambda _dataset: False)
        try:
            dataset = sr_reader.parse_dicom(data)
            report = sr_reader.read_sr(dataset)
        except DomainError as exc:
            return type(exc)
        try:
            return report, sr_context.extract(dataset)
        except Exception as exc:  # compared, not hidden
            return type(exc)


def outcome(data: bytes, fast: bool) -> TimepointReport | type[Exception]:
    """The report of :func:`read_step`, or its domain error class."""
    result = read_step(data, fast)
    return result[0] if isinstance(result, tuple) else result


def walked(data: bytes) -> dict[str, object] | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sr_fastwalk.content_root(sr_reader.parse_dicom(data))


@pytest.mark.parametrize(
    "data", SEEDS, ids=[p.name for p in FILES] + ["every", "issuer", "one", "scoord3d"]
)
def test_seeds_read_alike_on_both_paths(data: bytes) -> None:
    assert read_step(data, fast=True) == read_step(data, fast=False)


def test_coordinates_of_every_kind_read_alike_on_both_paths() -> None:
    """The seeds hold SCOORDs of TID 1410 regions with their image and a SCOORD3D with
    its Frame of Reference, equal on both paths (SCOORDs under NUMs: the DCMTK test)."""
    found: set[tuple[int, str, bool]] = set()
    for data in SEEDS:
        fast, slow = outcome(data, fast=True), outcome(data, fast=False)
        assert fast == slow
        if isinstance(fast, TimepointReport):
            found.update(
                (c.dimensions, c.graphic_type, c.referenced_sop_uid is not None)
                for lesion in fast.lesions
                for m in lesion.measurements
                for c in m.provenance.coordinates
            )
    assert {(2, "POLYLINE", True), (2, "CIRCLE", True), (3, "POLYLINE", False)} <= found


@pytest.mark.parametrize("data", FACTORY + [p.read_bytes() for p in FILES if "example" in str(p)])
def test_explicit_little_endian_srs_take_the_fast_path(data: bytes) -> None:
    root = walked(data)
    assert root is not None
    assert isinstance(outcome(data, fast=True), TimepointReport)
    dataset = sr_reader.parse_dicom(data)
    sr_reader.read_sr(dataset)
    sr_context.extract(dataset)
    for keyword in ("PatientID", "StudyDate", "ConceptNameCodeSequence", "ContentSequence"):
        element = dataset.get_item(tag_for_keyword(keyword) or 0)
        assert isinstance(element, RawDataElement), keyword


def test_other_transfer_syntaxes_fall_back_to_pydicom() -> None:
    dataset = make_sr(patient_id="FAST-4", study_date="20240105", lesions=EVERY_FEATURE[:2])
    data = sr_bytes(dataset)
    dataset.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    implicit = sr_bytes(dataset)
    assert walked(implicit) is None
    report = outcome(implicit, fast=True)
    assert isinstance(report, TimepointReport)
    assert report.lesions == outcome(data, fast=False).lesions  # type: ignore[union-attr]


def test_another_character_set_falls_back_to_pydicom() -> None:
    dataset = make_sr(patient_id="FAST-5", study_date="20240105", lesions=EVERY_FEATURE[:1])
    dataset.SpecificCharacterSet = "ISO_IR 144"
    assert walked(sr_bytes(dataset)) is None


def _multi_valued(dataset: Dataset) -> None:
    dataset.PatientID, dataset.StudyID = ["FAST-9", "FAST-10"], ["A", "B"]


def _person_name_groups(dataset: Dataset) -> None:
    dataset.PatientName = "Doe^Jane=Doe^J"
    # pydicom prints this value as "Roe^R" (and would write it so: written raw)
    tag = Tag(tag_for_keyword("ReferringPhysicianName") or 0)
    dataset[tag] = RawDataElement(tag, "PN", 8, b"Roe^R== ", 0, False, True)


def _empty(dataset: Dataset) -> None:
    dataset.PatientName = dataset.AccessionNumber = dataset.PatientSex = ""
    dataset.StudyInstanceUID = dataset.IssuerOfPatientID = ""


def _padded(dataset: Dataset) -> None:
    dataset.PatientID, dataset.IssuerOfPatientID = " FAST-9 ", "HOSP\t"
    dataset.PatientName, dataset.StudyTime = "Doe^Jane^^", "101010\0"


@pytest.mark.parametrize("edit", [_multi_valued, _person_name_groups, _empty, _padded])
def test_top_level_values_read_as_pydicom_reads_them(edit: Callable[[Dataset], None]) -> None:
    """Header reads the text pydicom would give, or leaves the value to pydicom."""
    dataset = make_sr(patient_id="FAST-9", study_date="20240105", lesions=EVERY_FEATURE[:2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's value validation
        edit(dataset)
        data = sr_bytes(dataset)
    assert read_step(data, fast=True) == read_step(data, fast=False)


def test_top_level_dates_read_as_pydicom_converts_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "datetime_conversion", True)
    for data in FACTORY:
        assert read_step(data, fast=True) == read_step(data, fast=False)


def _nested(depth: int) -> Dataset:
    dataset = make_sr(patient_id="FAST-6", study_date="20240105", lesions=EVERY_FEATURE[:1])
    item = dataset.ContentSequence[0]
    for _ in range(depth):
        child = Dataset()
        child.RelationshipType, child.ValueType, child.TextValue = "CONTAINS", "TEXT", "x"
        item.ContentSequence = [child]
        item = child
    return dataset


def test_limits_raise_too_costly_as_the_pydicom_walk_does() -> None:
    deep = sr_bytes(_nested(sr_fastwalk.MAX_CONTENT_DEPTH + 1))
    with pytest.raises(TooCostly):
        walked(deep)
    assert outcome(deep, fast=True) is outcome(deep, fast=False) is TooCostly
    dataset = make_sr(patient_id="FAST-7", study_date="20240105", lesions=EVERY_FEATURE[:1])
    dataset.ContentSequence = list(dataset.ContentSequence) * (
        sr_fastwalk.MAX_CONTENT_ITEMS // len(dataset.ContentSequence) + 1
    )
    many = sr_bytes(dataset)
    with pytest.raises(TooCostly):
        walked(many)
    assert outcome(many, fast=False) is TooCostly
    # sr_context reads only the top-level content items: pydicom, no limit
    assert sr_context.extract(sr_reader.parse_dicom(many)) == sr_context.extract(dataset)


def test_depth_within_the_limit_reads_alike() -> None:
    data = sr_bytes(_nested(sr_fastwalk.MAX_CONTENT_DEPTH - 2))
    assert walked(data) is not None
    assert outcome(data, fast=True) == outcome(data, fast=False)


@pytest.mark.skipif(shutil.which("xml2dsr") is None, reason="DCMTK xml2dsr is not installed")
def test_dcmtk_srs_read_alike(tmp_path: Path) -> None:
    for day, lesions in TIMEPOINTS.items():
        source, target = tmp_path / f"{day}.xml", tmp_path / f"{day}.dcm"
        source.write_text(dsr_xml("PAT-DCMTK", day, lesions))
        subprocess.run(["xml2dsr", str(source), str(target)], check=True, timeout=60)
        data = target.read_bytes()
        assert isinstance(outcome(data, fast=True), TimepointReport)
        assert outcome(data, fast=True) == outcome(data, fast=False)


@st.composite
def mutants(draw: st.DrawFn) -> bytes:
    """A seed with one to four mutations inside its ContentSequence."""
    index = draw(st.integers(0, len(MUTANT_SEEDS) - 1))
    seed, texts, floats = MUTANT_SEEDS[index], TEXT_POSITIONS[index], FLOAT_POSITIONS[index]
    header = HEADER_POSITIONS[index]
    data = bytearray(seed)
    start = max(seed.find(b"\x40\x00\x30\xa7"), 0)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(start, max(len(data) - 1, start)))
        operation = draw(st.sampled_from(OPERATIONS))
        if operation == "char" and texts:
            at = draw(st.sampled_from(texts))
            if at < len(data):
                data[at] = draw(st.sampled_from(VALUE_BYTES))
        elif operation == "header" and header:
            at = draw(st.sampled_from(header))
            if at < len(data):
                data[at] = draw(st.sampled_from(HEADER_BYTES))
        elif operation == "float" and floats:
            at = draw(st.sampled_from(floats))
            data[at : at + 4] = draw(st.sampled_from(FLOATS) | st.binary(min_size=4, max_size=4))
        elif operation == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif operation == "byte" and at < len(data):
            data[at] = draw(st.sampled_from(BOUNDARIES))
        elif operation == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif operation == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        elif operation == "length":
            size = draw(st.sampled_from((2, 4)))
            value = draw(st.sampled_from(LENGTHS)) & ((1 << (8 * size)) - 1)
            data[at : at + size] = value.to_bytes(size, "little")
        elif operation == "cut":
            del data[at:]
    return bytes(data)


@settings(
    max_examples=2000,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=mutants())
def test_mutants_read_alike_on_both_paths(data: bytes) -> None:
    assert read_step(data, fast=True) == read_step(data, fast=False)
