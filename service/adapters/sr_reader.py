"""Read a DICOM SR "Measurement Report" (PS3.16 TID 1500) into a :class:`TimepointReport`.

What is read, and how, is contract.md section 3 ("What the service reads"); the tree
shape and the producer quirks handled here are interop.md sections 1.1-1.6 and 2.2:

* root CONTAINER (126000, DCM) / TID 1500 > CONTAINER (126010, DCM) "Imaging
  Measurements" > CONTAINER (125007, DCM) "Measurement Group" (TID 1501/1410/1411, with
  or without ContentTemplateSequence): one :class:`LesionObservation` per group;
* TID 1502 Time Point, Tracking Identifier/UID, Baseline Category (CID 6145), NCIt
  Tumor State, Finding Site, TID 300/1419 NUM measurements anywhere inside a group,
  other CODE/TEXT items as qualitative findings;
* SCOORD / SCOORD3D items (TID 320 under a NUM, TID 1410/1411 group regions) with
  their SELECTED FROM image or Frame of Reference, as each measurement's coordinates;
* retired SNOMED RT codes, dcmjs/OHIF tool-tag identifiers with free-text labels,
  value-less NUMs and length unit ``1`` are accepted and reported as warnings.

The walk is plain pydicom, one visit per content item: highdicom's reader is slow
and fails on viewer SRs (interop.md 2.2), so it is used by the tests only.

pydicom validates values lazily, when an attribute is first read, and emits a
``UserWarning`` for out-of-spec values (e.g. a dcmjs Code Value longer than 16
characters). Those warnings are left to the caller's warning filters: the reader runs
in worker threads, where ``warnings.catch_warnings`` is not safe.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from io import BytesIO
from typing import Any, Final

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.uid import DeflatedExplicitVRLittleEndian

from service.adapters import sr_codes as C, sr_fastwalk
from service.adapters.sr_context import ASSESSMENT_DEVICE_UID
from service.domain.errors import InvalidInput, TooCostly, UnsupportedInput
from service.domain.model import (
    DEFAULT_PATIENT_SYSTEM,
    Code,
    Coordinates,
    LesionIdentity,
    LesionObservation,
    LesionRole,
    LesionState,
    Measurement,
    MeasurementKind,
    PatientIdentity,
    Provenance,
    QualitativeFinding,
    SourceDocument,
    TimepointReport,
)

# Storage SOP classes that can carry NUM items (interop.md 1.9); Basic Text SR cannot.
SR_SOP_CLASSES: Final = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR
        "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR
        "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR
        "1.2.840.10008.5.1.4.1.1.88.35",  # Extensible SR
    }
)

ISSUER_SYSTEM_PREFIX: Final = "urn:dicom:issuer:"

# What pydicom raises on bytes it cannot read, at dcmread or at the lazy conversion
# of a value, and what a malformed content tree makes the walk raise.
_MALFORMED = (
    InvalidDicomError,
    BytesLengthException,
    struct.error,
    EOFError,
    OSError,
    NotImplementedError,
    AttributeError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    ArithmeticError,
    zlib.error,
)
_UNDEFINED_LENGTH: Final = 0xFFFFFFFF


ContentItem = sr_fastwalk.ContentItem
# Structure limits (reliability.md section 5): pydicom inflates a deflated data set
# without a bound and recurses once per nesting level, so both are checked here.
MAX_INFLATED_BYTES: Final = 32 * 1024 * 1024
MAX_CONTENT_DEPTH: Final = sr_fastwalk.MAX_CONTENT_DEPTH
MAX_CONTENT_ITEMS: Final = sr_fastwalk.MAX_CONTENT_ITEMS
_INFLATE_CHUNK: Final = 4 * 1024 * 1024  # inflated in bounded steps, output discarded
_PREAMBLE_AND_PREFIX: Final = 132
# Value grammars checked before a value names anything (reliability.md R3; PS3.5 6.2,
# 9.1): a UID is digits and dots, at most 64 characters; a LO value at most 64
# characters without control characters (ESC belongs to ISO 2022 code extensions,
# which pydicom has already decoded).
_UID: Final = re.compile(r"[0-9]+(\.[0-9]+)*")
_MAX_UID_CHARS: Final = 64
_MAX_LO_CHARS: Final = 64
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
_LONG_LENGTH_VRS: Final = frozenset(
    {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UC", b"UR", b"UT", b"UN"}
)
_DEVICE_OBSERVER_UID: Final[C.Key] = ("121012", "DCM")
_COMMENT: Final[C.Key] = ("121106", "DCM")
_NO_CONCEPT: Final[C.Key] = ("", "")
_LENGTH_KINDS = frozenset(
    {
        MeasurementKind.LONG_AXIS,
        MeasurementKind.SHORT_AXIS,
        MeasurementKind.DIAMETER,
        MeasurementKind.VIABLE_LONG_AXIS,
    }
)


def parse_dicom(data: bytes, *, max_inflated_bytes: int = MAX_INFLATED_BYTES) -> Dataset:
    """Parse DICOM Part 10 bytes (no ``force``) and check the SOP class is an SR one.

    Raises :class:`InvalidInput` for unreadable bytes, :class:`UnsupportedInput` for a
    readable object that is not an SR able to hold measurements and :class:`TooCostly`
    for a deflated data set inflating beyond *max_inflated_bytes*.
    """
    try:
        _check_inflated_size(data, max_inflated_bytes)
        dataset = dcmread(BytesIO(data), stop_before_pixels=True)
        _require_complete(dataset)
        sop_class = _sop_class(dataset)
    except RecursionError:
        raise TooCostly("the DICOM data set is nested too deeply to read") from None
    except _MALFORMED as exc:
        raise InvalidInput(f"not a readable DICOM Part 10 file: {exc}") from exc
    _require_sr(sop_class)
    return dataset


def _check_inflated_size(data: bytes, limit: int) -> None:
    """Refuse a Deflated Explicit VR Little Endian data set (PS3.5 A.5) that inflates
    beyond *limit* bytes, before pydicom inflates it without a bound."""
    position, transfer_syntax = _PREAMBLE_AND_PREFIX, b""
    while data[position : position + 2] == b"\x02\x00" and position + 8 <= len(data):
        element, vr = data[position + 2 : position + 4], data[position + 4 : position + 6]
        if vr in _LONG_LENGTH_VRS:
            (length,) = struct.unpack_from("<I", data, position + 8)
            start = position + 12
        else:
            (length,) = struct.unpack_from("<H", data, position + 6)
            start = position + 8
        if element == b"\x10\x00":
            transfer_syntax = data[start : start + length]
        position = start + length
    if transfer_syntax.rstrip(b"\x00 ") != DeflatedExplicitVRLittleEndian.encode():
        return
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    size = len(inflater.decompress(data[position:], _INFLATE_CHUNK))
    while inflater.unconsumed_tail and size <= limit:
        size += len(inflater.decompress(inflater.unconsumed_tail, _INFLATE_CHUNK))
    if size > limit:
        raise TooCostly(f"the deflated data set inflates beyond {limit} bytes")


def _require_complete(dataset: Dataset) -> None:
    """Reject what pydicom reads silently from truncated bytes.

    Values are read lazily, so a cut inside the last top-level element shows as a
    raw value shorter than its declared length; a cut in the file meta leaves no
    data set at all.
    """
    elements = list(dataset.elements())
    if not elements:
        raise ValueError("no data set after the file meta information")
    last = elements[-1]
    value, length = getattr(last, "value", None), getattr(last, "length", None)
    if isinstance(value, bytes) and length != _UNDEFINED_LENGTH and len(value) < (length or 0):
        raise ValueError(f"the data set is truncated in element {last.tag}")


_GROUP_LENGTH_ELEMENT: Final = 12  # (0002,0000) UL, explicit VR little endian


def data_set_start(dataset: Dataset) -> int:
    """Where the data set of *dataset*'s Part 10 bytes starts, after its File Meta
    Information (0 when it has none, or no group length)."""
    meta = getattr(dataset, "file_meta", None)
    length = meta.get("FileMetaInformationGroupLength") if meta is not None else None
    return _PREAMBLE_AND_PREFIX + _GROUP_LENGTH_ELEMENT + length if isinstance(length, int) else 0


def read_sr(dataset: Dataset, *, patient_system: str = DEFAULT_PATIENT_SYSTEM) -> TimepointReport:
    """The TID 1500 Measurement Report in *dataset* as a :class:`TimepointReport`.

    The patient is ``PatientIdentity(patient_system, PatientID)`` when the SR has no
    IssuerOfPatientID, else ``PatientIdentity("urn:dicom:issuer:<issuer>", PatientID)``
    (contract section 3, "Patient"). The date is StudyDate, else ContentDate.

    Raises only domain errors: :class:`UnsupportedInput` for an SR this service does
    not read (not TID 1500, no PatientID, no date, no usable group, unit that is not a
    length), :class:`InvalidInput` for content that contradicts the standard.
    """
    try:
        tree: ContentItem | None = sr_fastwalk.content_root(dataset)  # checks the limits
        if tree is None:
            tree = dataset
            _check_content_tree(tree)
        return _read(dataset, tree, patient_system)
    except RecursionError:
        raise TooCostly("the SR content tree is nested too deeply to read") from None
    except _MALFORMED as exc:
        raise InvalidInput(f"malformed SR content ({type(exc).__name__}: {exc})") from exc


def _check_content_tree(dataset: ContentItem) -> None:
    """Refuse a content tree deeper than :data:`MAX_CONTENT_DEPTH` levels or with more
    than :data:`MAX_CONTENT_ITEMS` items (TID 1500 needs about six levels); iterative,
    so a hostile depth never recurses."""
    pending: list[tuple[ContentItem, int]] = [(dataset, 0)]
    count = 0
    while pending:
        item, depth = pending.pop()
        children = item.get("ContentSequence") or ()
        if children and depth >= MAX_CONTENT_DEPTH:
            raise TooCostly(f"the SR content tree is deeper than {MAX_CONTENT_DEPTH} levels")
        count += len(children)
        if count > MAX_CONTENT_ITEMS:
            raise TooCostly(f"the SR has more than {MAX_CONTENT_ITEMS} content items")
        pending.extend((child, depth + 1) for child in children)


@dataclass
class _Notes:
    """Warnings of one report; ignored concepts and tool-tag names are aggregated."""

    warnings: list[str] = field(default_factory=list)
    ignored: dict[str, None] = field(default_factory=dict)  # an ordered set
    tool_tagged: list[str] = field(default_factory=list)

    def all(self) -> tuple[str, ...]:
        found = list(self.warnings)
        if self.ignored:
            found.append(f"Ignored measurements of unsupported concepts: {', '.join(self.ignored)}")
        if self.tool_tagged:
            found.append(
                f"Measurement groups {', '.join(self.tool_tagged)} are named only by a viewer"
                " tool tag: their lesions cannot be followed by name"
            )
        return tuple(found)


@dataclass
class _Num:
    """A NUM content item met in a group, resolved once its children are seen."""

    path: str
    item: ContentItem
    concept: Code
    derivation: C.Key | None = None
    image_uid: str | None = None
    coordinates: list[Coordinates] = field(default_factory=list)

    @property
    def key(self) -> C.Key:
        return _key(self.concept)

    @property
    def name(self) -> str:
        return self.concept.meaning or self.concept.value


@dataclass
class _Group:
    """What one walk over a Measurement Group's content found."""

    path: str
    identifiers: list[str] = field(default_factory=list)
    uids: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    role: LesionRole | None = None
    state: LesionState | None = None
    merge_refs: list[tuple[str, str]] = field(default_factory=list)
    sites: list[Code] = field(default_factory=list)
    nums: list[_Num] = field(default_factory=list)
    image_uid: str | None = None
    coordinates: list[Coordinates] = field(default_factory=list)  # the group's region
    findings: list[QualitativeFinding] = field(default_factory=list)
    time_point: str | None = None


# -- document level ---------------------------------------------------------------


def _read(dataset: Dataset, tree: ContentItem, patient_system: str) -> TimepointReport:
    """The report of *dataset*, its content items read from *tree* (*dataset* itself
    or :func:`sr_fastwalk.content_root` of it)."""
    _require_sr(_sop_class(dataset))
    ds = sr_fastwalk.Header(dataset)
    require_measurement_report(ds)
    _refuse_own_assessment(tree)
    patient = _patient(ds, patient_system)
    day = _date(ds)
    source = SourceDocument(
        uid=_uid(ds, "SOPInstanceUID"),
        kind="dicom-sr",
        preliminary=ds.get("PreliminaryFlag") == "PRELIMINARY",
    )
    notes = _Notes()
    report_label, groups = _report_items(tree)
    if not groups:
        raise UnsupportedInput("the Measurement Report has no measurement groups")
    scanned = [_scan_group(item, path, notes) for path, item in groups]
    lesions = [obs for group in scanned if (obs := _observation(group, notes)) is not None]
    if not lesions:
        raise UnsupportedInput("no measurement group has a Tracking UID or Tracking Identifier")
    return TimepointReport(
        patient=patient,
        date=day,
        source=source,
        lesions=tuple(lesions),
        label=report_label or _group_label(scanned, notes),
        study_uid=str(ds.get("StudyInstanceUID") or "") or None,
        warnings=notes.all(),
    )


def _sop_class(ds: Dataset) -> str:
    value = sr_fastwalk.Header(ds).get("SOPClassUID")
    if not value:
        meta = getattr(ds, "file_meta", None)
        value = meta.get("MediaStorageSOPClassUID") if meta is not None else None
    return str(value or "")


def _require_sr(sop_class: str) -> None:
    if sop_class not in SR_SOP_CLASSES:
        raise UnsupportedInput(
            f"SOP Class {sop_class or '(none)'} is not an Enhanced, Comprehensive,"
            " Comprehensive 3D or Extensible SR"
        )


def require_measurement_report(ds: ContentItem) -> None:
    """Raise :class:`UnsupportedInput` unless *ds* is a TID 1500 Measurement Report."""
    templates = ds.get("ContentTemplateSequence")
    template = templates[0].get("TemplateIdentifier") if templates else None
    is_report = _concept_key(ds) == C.REPORT_TITLE or template == C.REPORT_TEMPLATE
    if ds.get("ValueType") != "CONTAINER" or not is_report:
        raise UnsupportedInput("not a TID 1500 Measurement Report")


def _refuse_own_assessment(ds: ContentItem) -> None:
    """An assessment SR this service wrote (TID 1004 Device Observer UID 121012 DCM =
    ASSESSMENT_DEVICE_UID) holds verdicts, not measurements: it is never re-ingested."""
    for _path, item in _children(ds, ""):
        if _concept_key(item) == _DEVICE_OBSERVER_UID and item.get("UID") == ASSESSMENT_DEVICE_UID:
            raise UnsupportedInput(
                "this SR is an assessment written by tumour-response, not a measurement"
                " report: it is not read"
            )


def _patient(ds: ContentItem, patient_system: str) -> PatientIdentity:
    patient_id = str(ds.get("PatientID") or "").strip()
    if not patient_id:
        raise UnsupportedInput("the SR has no PatientID", expression="PatientID")
    if len(patient_id) > _MAX_LO_CHARS or _CONTROL.search(patient_id):
        raise InvalidInput(
            f"PatientID is not a DICOM LO value (at most {_MAX_LO_CHARS} characters,"
            " no control characters)",
            expression="PatientID",
        )
    issuer = str(ds.get("IssuerOfPatientID") or "").strip()
    system = f"{ISSUER_SYSTEM_PREFIX}{issuer}" if issuer else patient_system
    return PatientIdentity(system=system, value=patient_id)


def _date(ds: ContentItem) -> date:
    for keyword in ("StudyDate", "ContentDate"):
        value = ds.get(keyword)
        if isinstance(value, date):
            return value
        if value:
            try:
                return datetime.strptime(str(value).strip(), "%Y%m%d").date()
            except ValueError:
                raise InvalidInput(
                    f"{keyword} {value!r} is not a DICOM date (YYYYMMDD)", expression=keyword
                ) from None
    raise UnsupportedInput("the SR has neither StudyDate nor ContentDate", expression="StudyDate")


def _required_text(ds: ContentItem, keyword: str) -> str:
    value = str(ds.get(keyword) or "").strip()
    if not value:
        raise InvalidInput(f"the SR has no {keyword}", expression=keyword)
    return value


def _uid(ds: ContentItem, keyword: str) -> str:
    value = _required_text(ds, keyword)
    if len(value) > _MAX_UID_CHARS or _UID.fullmatch(value) is None:
        raise InvalidInput(
            f"{keyword} is not a DICOM UID (digits and dots, at most {_MAX_UID_CHARS} characters)",
            expression=keyword,
        )
    return value


def _report_items(ds: ContentItem) -> tuple[str | None, list[tuple[str, ContentItem]]]:
    """The report-level TID 1502 Time Point and the (path, item) of every group."""
    label: str | None = None
    groups: list[tuple[str, ContentItem]] = []
    for path, item in _children(ds, ""):
        key = _concept_key(item)
        if key == C.TIME_POINT and item.get("ValueType") == "TEXT":
            label = label or _text(item)
        elif key == C.IMAGING_MEASUREMENTS:
            groups.extend(
                (group_path, group)
                for group_path, group in _children(item, path)
                if _concept_key(group) == C.MEASUREMENT_GROUP
                and group.get("ValueType") == "CONTAINER"
            )
    return label, groups


def _group_label(groups: Sequence[_Group], notes: _Notes) -> str | None:
    labels = list(dict.fromkeys(g.time_point for g in groups if g.time_point))
    if len(labels) > 1:
        notes.warnings.append(
            f"Measurement groups name different time points ({', '.join(labels)});"
            f" used {labels[0]!r}"
        )
    return labels[0] if labels else None


# -- content items ----------------------------------------------------------------


def _children(item: ContentItem, path: str) -> Iterator[tuple[str, ContentItem]]:
    """The content items directly under *item*, with their 1-based paths."""
    prefix = f"{path}." if path else ""
    for index, child in enumerate(item.get("ContentSequence") or (), start=1):
        yield f"{prefix}{index}", child


def _code(entry: ContentItem) -> Code:
    """A code sequence item as a :class:`Code`, retired SRT codes translated to SCT."""
    value = str(
        entry.get("CodeValue") or entry.get("LongCodeValue") or entry.get("URNCodeValue") or ""
    )
    scheme = str(entry.get("CodingSchemeDesignator") or "")
    meaning = str(entry.get("CodeMeaning") or "")
    if scheme.upper() == "SRT" and value in C.SRT_TO_SCT:
        sct_value, sct_meaning = C.SRT_TO_SCT[value]
        return Code(sct_value, "SCT", meaning or sct_meaning)
    return Code(value, scheme, meaning)


def _key(code: Code) -> C.Key:
    return code.value, code.scheme.upper()


def _concept(item: ContentItem) -> Code | None:
    names = item.get("ConceptNameCodeSequence")
    return _code(names[0]) if names else None


def _concept_key(item: ContentItem) -> C.Key:
    concept = _concept(item)
    return _key(concept) if concept is not None else _NO_CONCEPT


def _value_code(item: ContentItem) -> Code | None:
    values = item.get("ConceptCodeSequence")
    return _code(values[0]) if values else None


def _text(item: ContentItem) -> str:
    return str(item.get("TextValue") or "").strip()


def _image_uid(item: ContentItem) -> str | None:
    refs = item.get("ReferencedSOPSequence")
    if not refs:
        return None
    return str(refs[0].get("ReferencedSOPInstanceUID") or "") or None


# -- one measurement group ----------------------------------------------------------


def _scan_group(item: ContentItem, path: str, notes: _Notes) -> _Group:
    group = _Group(path)
    _visit(group, item, path, top=None, num=None, notes=notes)
    return group


def _visit(
    group: _Group,
    parent: ContentItem,
    path: str,
    top: C.Key | None,
    num: _Num | None,
    notes: _Notes,
) -> None:
    """Visit every item under *parent* once; *top* is the key of the group-level
    ancestor (``None`` for the group's own items), *num* the nearest NUM ancestor."""
    for item_path, item in _children(parent, path):
        concept = _concept(item)
        key = _key(concept) if concept is not None else _NO_CONCEPT
        value_type = item.get("ValueType")
        inner = num
        if top is None:
            _read_group_item(group, item_path, item, concept, value_type, notes)
        elif top == C.TUMOR_STATE and value_type in ("TEXT", "UIDREF"):
            group.merge_refs.append((value_type, _text(item) or str(item.get("UID") or "")))
        if value_type == "NUM" and concept is not None:
            inner = _Num(item_path, item, concept)
            group.nums.append(inner)
        elif value_type == "IMAGE":
            _note_image(group, num, _image_uid(item))
        elif value_type in ("SCOORD", "SCOORD3D"):
            _note_coordinates(group, num, item_path, item, notes)
        elif num is not None and key == C.DERIVATION and num.derivation is None:
            derivation = _value_code(item)
            num.derivation = _key(derivation) if derivation is not None else None
        if "ContentSequence" in item:
            _visit(group, item, item_path, key if top is None else top, inner, notes)


def _note_image(group: _Group, num: _Num | None, uid: str | None) -> None:
    if num is not None:
        num.image_uid = num.image_uid or uid
    else:
        group.image_uid = group.image_uid or uid


def _note_coordinates(
    group: _Group, num: _Num | None, path: str, item: ContentItem, notes: _Notes
) -> None:
    """A SCOORD / SCOORD3D under a NUM (TID 300 INFERRED FROM, TID 320) belongs to that
    NUM; elsewhere in the group (TID 1410/1411 region) to every measurement of the
    group that has none of its own. Unusable coordinates are ignored with a warning."""
    try:
        coordinates = _coordinates(item, path)
    except InvalidInput as exc:
        notes.warnings.append(f"{item.get('ValueType')} at {path} ignored: {exc}")
        return
    (num.coordinates if num is not None else group.coordinates).append(coordinates)


def _coordinates(item: ContentItem, path: str) -> Coordinates:
    graphic_type = str(item.get("GraphicType") or "").strip()
    points = _floats(item.get("GraphicData"))
    if item.get("ValueType") == "SCOORD3D":
        frame = str(item.get("ReferencedFrameOfReferenceUID") or "").strip()
        if not frame:
            raise InvalidInput("a SCOORD3D needs a ReferencedFrameOfReferenceUID")
        return Coordinates(graphic_type, points, frame_of_reference_uid=frame)
    image = next(
        (
            uid
            for _path, child in _children(item, path)
            if child.get("ValueType") == "IMAGE" and (uid := _image_uid(child))
        ),
        None,
    )
    return Coordinates(graphic_type, points, referenced_sop_uid=image)


def _floats(value: Any) -> tuple[float, ...]:
    """An FL value as pydicom gives it (None, a float, or a list of them) or as
    :mod:`.sr_fastwalk` gives it (a tuple), as a tuple."""
    if value is None or value == "":
        return ()
    if isinstance(value, float | int):
        return (float(value),)
    return tuple(float(number) for number in value)


def _read_group_item(
    group: _Group,
    path: str,
    item: ContentItem,
    concept: Code | None,
    value_type: str | None,
    notes: _Notes,
) -> None:
    """Identity, role, state, site, time point and findings: the group's own items."""
    if concept is None:
        return
    key = _key(concept)
    if value_type == "TEXT":
        text = _text(item)
        if key == C.TRACKING_ID:
            group.identifiers.append(text)
        elif key == C.TIME_POINT:
            group.time_point = group.time_point or text or None
        elif key == _COMMENT and text:
            # OHIF v3 / Cornerstone3D adapters put the user's label here; it names the
            # lesion only when the Tracking Identifier is a tool tag (then it is no finding).
            group.labels.append(text)
            group.findings.append(QualitativeFinding(concept, text))
        elif key not in C.NOT_FINDINGS and text:
            group.findings.append(QualitativeFinding(concept, text))
    elif value_type == "UIDREF" and key == C.TRACKING_UID:
        group.uids.append(str(item.get("UID") or "").strip())
    elif value_type == "CODE" and (value := _value_code(item)) is not None:
        _read_group_code(group, path, concept, value, notes)


def _read_group_code(group: _Group, path: str, concept: Code, value: Code, notes: _Notes) -> None:
    key = _key(concept)
    if key == C.BASELINE_CATEGORY:
        group.role = C.ROLES.get(_key(value))
        if group.role is None:
            notes.warnings.append(f"Group {path}: unknown Baseline Category {value.meaning!r}")
    elif key == C.TUMOR_STATE:
        group.state = C.state_of(value)
        if group.state is None:
            notes.warnings.append(f"Group {path}: unknown Tumor State {value.meaning!r}")
    elif key in (C.FINDING, C.FINDING_SITE) and value.scheme.upper() in C.LABEL_SCHEMES:
        group.labels.append(value.meaning.strip())
    elif key == C.FINDING_SITE:
        group.sites.append(value)
    elif key not in C.NOT_FINDINGS:
        group.findings.append(C.coded_finding(concept, value))


def _observation(group: _Group, notes: _Notes) -> LesionObservation | None:
    identity = _identity(group, notes)
    if identity is None:
        notes.warnings.append(
            f"Measurement group {group.path} has neither Tracking UID nor Tracking Identifier:"
            " skipped"
        )
        return None
    measurements, slice_thickness = _measurements(group, notes)
    site = group.sites[0] if group.sites else None
    merged = _merged_into(group, notes) if group.state is LesionState.MERGED else None
    return LesionObservation(
        identity=identity,
        role=group.role,
        site=site,
        is_nodal=site is not None and C.is_nodal(site),
        state=group.state,
        measurements=tuple(measurements),
        findings=tuple(f for f in group.findings if not _is_label(f, identity)),
        merged_into=merged,
        slice_thickness_mm=slice_thickness,
    )


def _identity(group: _Group, notes: _Notes) -> LesionIdentity | None:
    uid = group.uids[0] if group.uids else None
    text = group.identifiers[0] if group.identifiers else None
    if text and _is_tool_tag(text):
        label = next((label for label in group.labels if label), None)
        if label:
            notes.warnings.append(
                f"Group {group.path}: Tracking Identifier {text!r} is a viewer tool tag;"
                f" used its label {label!r}"
            )
            text = label
        else:
            notes.tool_tagged.append(group.path)
    if not (uid or text):
        return None
    return LesionIdentity(tracking_uid=uid or None, tracking_id=text or None)


def _is_label(finding: QualitativeFinding, identity: LesionIdentity) -> bool:
    """The OHIF v3 Comment that became the lesion's name."""
    return _key(finding.concept) == _COMMENT and finding.value == identity.tracking_id


def _is_tool_tag(text: str) -> bool:
    """dcmjs/OHIF write a tool tag such as ``cornerstoneTools@^4.0.0:Length``."""
    return ("@" in text and ":" in text) or text.lower() == "web annotation"


def _merged_into(group: _Group, notes: _Notes) -> LesionIdentity | None:
    """A merged lesion names its host by a second tracking item or under its state."""
    uid = group.uids[1] if len(group.uids) > 1 else None
    text = group.identifiers[1] if len(group.identifiers) > 1 else None
    for value_type, value in group.merge_refs:
        if value_type == "UIDREF":
            uid = uid or value
        else:
            text = text or value
    if not (uid or text):
        notes.warnings.append(
            f"Group {group.path} is MERGED but does not name the lesion it merged into"
        )
        return None
    return LesionIdentity(tracking_uid=uid or None, tracking_id=text or None)


# -- measurements -------------------------------------------------------------------


def _measurements(group: _Group, notes: _Notes) -> tuple[list[Measurement], Decimal | None]:
    """The group's measurements and slice thickness; Length is a fallback diameter."""
    found: list[Measurement] = []
    lengths: list[tuple[_Num, Decimal]] = []
    thickness: Decimal | None = None
    for num in group.nums:
        read = _numeric(num, notes)
        if read is None:
            continue
        value, unit = read
        kind = _kind(num)
        if kind is not None:
            found.append(_measurement(kind, _in_unit_of(kind, value, unit, num, notes), num, group))
        elif num.key == C.SLICE_THICKNESS and thickness is None:
            thickness = _positive(_to_mm(value, unit, num, notes), num)
        elif num.key == C.LENGTH and _is_length_unit(unit):
            lengths.append((num, _to_mm(value, unit, num, notes)))
        else:
            notes.ignored[f"{num.name} in {unit or 'no unit'}"] = None
    has_diameter = any(
        m.kind in (MeasurementKind.LONG_AXIS, MeasurementKind.DIAMETER) for m in found
    )
    for num, value in lengths:
        if has_diameter:
            notes.ignored[f"{num.name} in mm"] = None
            continue
        notes.warnings.append(f"Group {group.path}: Length at {num.path} read as a diameter")
        found.append(_measurement(MeasurementKind.DIAMETER, value, num, group))
    return found, thickness


def _kind(num: _Num) -> MeasurementKind | None:
    key = num.key
    if key == C.ATTENUATION:
        return MeasurementKind.MEAN_ATTENUATION if num.derivation == C.MEAN else None
    return C.MEASUREMENT_KINDS.get(key)


def _numeric(num: _Num, notes: _Notes) -> tuple[Decimal, str] | None:
    """The value and UCUM unit of a NUM; a NUM without a value is skipped with a warning."""
    values = num.item.get("MeasuredValueSequence")
    raw = values[0].get("NumericValue") if values else None
    if raw is None or str(raw).strip() == "":
        notes.warnings.append(f"NUM {num.name!r} at {num.path} has no value: skipped")
        return None
    try:
        value = Decimal(str(raw).strip())
    except InvalidOperation:
        raise InvalidInput(
            f"NUM {num.name!r} at {num.path} has a value {str(raw)!r} that is not a number",
            expression=num.path,
        ) from None
    units = values[0].get("MeasurementUnitsCodeSequence")
    return value, (_code(units[0]).value if units else "")


def _in_unit_of(
    kind: MeasurementKind, value: Decimal, unit: str, num: _Num, notes: _Notes
) -> Decimal:
    if kind in _LENGTH_KINDS:
        return _to_mm(value, unit, num, notes)
    if unit != C.HOUNSFIELD:
        raise UnsupportedInput(
            f"unit {unit!r} of {num.name!r} at {num.path} is not {C.HOUNSFIELD}",
            expression=num.path,
        )
    return value


def _is_length_unit(unit: str) -> bool:
    return unit in C.MM_PER_UNIT or unit == C.DIMENSIONLESS


def _to_mm(value: Decimal, unit: str, num: _Num, notes: _Notes) -> Decimal:
    if unit == C.DIMENSIONLESS:
        notes.warnings.append(f"{num.name!r} at {num.path} has unit '1': read as mm")
        return value
    factor = C.MM_PER_UNIT.get(unit)
    if factor is None:
        raise UnsupportedInput(
            f"unit {unit!r} of {num.name!r} at {num.path} is not a length unit (mm, cm, um)",
            expression=num.path,
        )
    return value * factor


def _positive(value: Decimal, num: _Num) -> Decimal:
    if not (value.is_finite() and value > 0):
        raise InvalidInput(
            f"slice thickness {value} mm at {num.path} is not a positive number",
            expression=num.path,
        )
    return value


def _measurement(kind: MeasurementKind, value: Decimal, num: _Num, group: _Group) -> Measurement:
    provenance = Provenance(
        path=num.path,
        referenced_sop_uid=num.image_uid or group.image_uid,
        coordinates=tuple(num.coordinates or group.coordinates),
    )
    try:
        return Measurement(kind=kind, value=value, provenance=provenance)
    except InvalidInput as exc:
        raise InvalidInput(f"{exc} (at {num.path})", expression=num.path) from exc
