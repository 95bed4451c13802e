"""Patients, timepoints, lesions and measurements: the words every criterion uses.

Two layers of the same facts:

* what one source document says (:class:`TimepointReport` holding
  :class:`LesionObservation` items), produced by the SR and FHIR readers and stored
  as received;
* a patient's :class:`History`, built from all stored reports by
  :func:`service.domain.history.build_history`: timepoints in date order, each
  lesion resolved to one :class:`TrackedLesion` followed over time.

Lengths are millimetres and every number is a :class:`~decimal.Decimal`
(criteria.md section 2: thresholds are never decided with binary floats).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from service.domain.errors import InvalidInput


class LesionRole(enum.Enum):
    """How a lesion takes part in an assessment (RECIST 1.1 section 3; CID 6145)."""

    TARGET = "target"
    NON_TARGET = "non-target"
    NON_LESION = "non-lesion"
    NEW = "new"
    NEW_TARGET = "new-target"  # iRECIST NLT (NCIt C139127)
    NEW_NON_TARGET = "new-non-target"  # iRECIST NLNT (NCIt C139126)

    @property
    def is_new(self) -> bool:
        return self in (LesionRole.NEW, LesionRole.NEW_TARGET, LesionRole.NEW_NON_TARGET)


class LesionState(enum.Enum):
    """Reader-asserted state of a lesion at one timepoint (NCIt C96643 Tumor State)."""

    PRESENT = "PRESENT"
    ABSENT = "ABSENT"
    TOO_SMALL_TO_MEASURE = "TOO SMALL TO MEASURE"
    UNEQUIVOCAL_PROGRESSION = "UNEQUIVOCAL PROGRESSION"
    EQUIVOCAL = "EQUIVOCAL"
    NOT_ASSESSED = "NOT ASSESSED"
    INCREASED = "INCREASED"
    MERGED = "MERGED"
    SPLIT = "SPLIT"


class MeasurementKind(enum.Enum):
    """What a number measures (contract section 3, interop.md section 1.5)."""

    LONG_AXIS = "long-axis"  # SCT 103339001
    SHORT_AXIS = "short-axis"  # SCT 103340004
    DIAMETER = "diameter"  # SCT 81827009
    MEAN_ATTENUATION = "mean-attenuation"  # DCM 112031 + Mean, or DCM 112181
    VIABLE_LONG_AXIS = "viable-long-axis"  # 99TR, mRECIST

    @property
    def unit(self) -> str:
        """The UCUM unit every value of this kind is stored in."""
        return "[hnsf'U]" if self is MeasurementKind.MEAN_ATTENUATION else "mm"


class Response(enum.Enum):
    """Response categories; values are the CDISC C96785 submission values."""

    CR = "CR"
    PR = "PR"
    SD = "SD"
    PD = "PD"
    NE = "NE"
    NON_CR_NON_PD = "NON-CR/NON-PD"
    # iRECIST (Seymour et al., Lancet Oncol 2017)
    ICR = "iCR"
    IPR = "iPR"
    ISD = "iSD"
    IUPD = "iUPD"
    ICPD = "iCPD"
    NON_ICR_NON_IUPD = "NON-iCR/NON-iUPD"
    # Chun morphologic response (JAMA 2009)
    OPTIMAL_MORPHOLOGIC = "OPTIMAL MORPHOLOGIC RESPONSE"
    PARTIAL_MORPHOLOGIC = "PARTIAL MORPHOLOGIC RESPONSE"
    ABSENT_MORPHOLOGIC = "ABSENT MORPHOLOGIC RESPONSE"


# A DICOM PatientID without issuer and a FHIR identifier in this system name the
# same patient (contract section 3, "Patient"); deployments may configure another.
DEFAULT_PATIENT_SYSTEM = "urn:tumour-response:patient-id"

# Largest length a reader may report: beyond it the value is a unit or data error
# (reliability.md section 3, "Clinical numeric integrity").
MAX_LENGTH_MM = Decimal(1000)


@dataclass(frozen=True, slots=True)
class Code:
    """A coded concept: value, scheme, meaning.

    The scheme is always the DICOM Coding Scheme Designator (``SCT``, ``DCM``,
    ``NCIt``, ``LN``, ``99TR``...): readers of FHIR map code system URIs to it, so
    concepts from both formats compare equal.
    """

    value: str
    scheme: str
    meaning: str = ""


@dataclass(frozen=True, slots=True)
class PatientIdentity:
    """The key of a patient's history: an identifier value within a system."""

    system: str
    value: str


@dataclass(frozen=True, slots=True)
class LesionIdentity:
    """How a source names a lesion: DICOM 112040 Tracking UID and/or 112039 label."""

    tracking_uid: str | None = None
    tracking_id: str | None = None

    def __post_init__(self) -> None:
        if not (self.tracking_uid or self.tracking_id):
            raise InvalidInput("a lesion needs a Tracking UID or a Tracking Identifier")

    def __str__(self) -> str:
        return self.tracking_id or self.tracking_uid or ""


# Graphic types and their point counts (PS3.3 C.18.6.1.2 SCOORD, C.18.9.1.2 SCOORD3D);
# None: one point or more.
_GRAPHIC_POINTS_2D: dict[str, int | None] = {
    "POINT": 1,
    "MULTIPOINT": None,
    "POLYLINE": None,
    "CIRCLE": 2,
    "ELLIPSE": 4,
}
_GRAPHIC_POINTS_3D: dict[str, int | None] = {
    "POINT": 1,
    "MULTIPOINT": None,
    "POLYLINE": None,
    "POLYGON": None,
    "ELLIPSE": 4,
    "ELLIPSOID": 6,
}


@dataclass(frozen=True, slots=True)
class Coordinates:
    """A region a value was inferred from: a DICOM SCOORD or SCOORD3D content item
    (PS3.3 C.18.6, C.18.9; TID 320 under a TID 300 NUM, or a TID 1410/1411 region).

    *points* is the flat GraphicData, (column, row) pairs in image pixels for SCOORD,
    (x, y, z) triplets in patient millimetres for SCOORD3D, which is what a
    :attr:`frame_of_reference_uid` marks. The values are binary floats: DICOM encodes
    them as FL, and they are positions, never compared with a threshold.
    """

    graphic_type: str
    points: tuple[float, ...]
    referenced_sop_uid: str | None = None  # SCOORD: the image it is SELECTED FROM
    frame_of_reference_uid: str | None = None  # SCOORD3D

    @property
    def dimensions(self) -> int:
        return 2 if self.frame_of_reference_uid is None else 3

    def __post_init__(self) -> None:
        dimensions = self.dimensions
        counts = _GRAPHIC_POINTS_2D if dimensions == 2 else _GRAPHIC_POINTS_3D
        if self.graphic_type not in counts:
            raise InvalidInput(
                f"graphic type {self.graphic_type!r} is not one of {', '.join(counts)}"
            )
        points, remainder = divmod(len(self.points), dimensions)
        wanted = counts[self.graphic_type]
        if remainder or points == 0 or (wanted is not None and points != wanted):
            raise InvalidInput(
                f"{self.graphic_type} needs {wanted or 'one or more'} points of"
                f" {dimensions} coordinates, not {len(self.points)} values"
            )
        if not all(map(math.isfinite, self.points)):
            raise InvalidInput(f"{self.graphic_type} has a coordinate that is not finite")


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a value came from: the content-item path, referenced image and the
    coordinates it was inferred from (issue 4)."""

    path: str = ""
    referenced_sop_uid: str | None = None
    coordinates: tuple[Coordinates, ...] = ()


@dataclass(frozen=True, slots=True)
class Measurement:
    """One number measured on one lesion at one timepoint, in its kind's unit."""

    kind: MeasurementKind
    value: Decimal
    provenance: Provenance = field(default_factory=Provenance)

    def __post_init__(self) -> None:
        if not self.value.is_finite():
            raise InvalidInput(f"{self.kind.value} value {self.value} is not finite")
        if self.kind is not MeasurementKind.MEAN_ATTENUATION and not (
            0 <= self.value <= MAX_LENGTH_MM
        ):
            raise InvalidInput(
                f"{self.kind.value} of {self.value} mm is outside 0-{MAX_LENGTH_MM} mm"
            )


@dataclass(frozen=True, slots=True)
class QualitativeFinding:
    """A coded or textual statement about a lesion (morphology, ancillary sign).

    ``value`` is the text (a code's meaning, or the code itself in the project
    scheme ``99TR``); ``code`` keeps the coded value when there is one.
    """

    concept: Code
    value: str
    code: Code | None = None


@dataclass(frozen=True, slots=True)
class LesionObservation:
    """Everything one source says about one lesion at one timepoint."""

    identity: LesionIdentity
    role: LesionRole | None = None
    site: Code | None = None
    is_nodal: bool = False
    state: LesionState | None = None
    measurements: tuple[Measurement, ...] = ()
    findings: tuple[QualitativeFinding, ...] = ()
    merged_into: LesionIdentity | None = None
    slice_thickness_mm: Decimal | None = None
    # Derived from the measurements when the observation is made: every assessment reads
    # them again for each past timepoint (issue 7, history growth).
    long_axis_mm: Decimal | None = field(init=False, repr=False, compare=False)
    """Longest diameter: the long axis, else a plain diameter."""
    short_axis_mm: Decimal | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        long_axis = self.value(MeasurementKind.LONG_AXIS)
        if long_axis is None:
            long_axis = self.value(MeasurementKind.DIAMETER)
        object.__setattr__(self, "long_axis_mm", long_axis)
        object.__setattr__(self, "short_axis_mm", self.value(MeasurementKind.SHORT_AXIS))

    def values(self, kind: MeasurementKind) -> tuple[Decimal, ...]:
        return tuple(_of_kind(self.measurements, kind))

    def value(self, kind: MeasurementKind) -> Decimal | None:
        """The measured value of *kind*; fragments of a SPLIT lesion are summed.

        RECIST 1.1 (criteria.md 3.2): a split lesion contributes the sum of the
        longest diameters of its fragments.
        """
        found = _of_kind(self.measurements, kind)
        if len(found) < 2:
            return found[0] if found else None
        if self.state is LesionState.SPLIT:
            return sum(found, Decimal(0))
        return max(found)


def _of_kind(measurements: tuple[Measurement, ...], kind: MeasurementKind) -> list[Decimal]:
    """The values of *kind*, in order. A list: :meth:`LesionObservation.value` runs two
    or three times for every observation made or decoded (issue 7, history growth),
    where a generator and a tuple cost more than the rest of it."""
    return [m.value for m in measurements if m.kind is kind]


@dataclass(frozen=True, slots=True)
class SourceDocument:
    """The document a report came from; its uid makes re-delivery idempotent."""

    uid: str  # SOP Instance UID, Observation/Bundle identifier, or content hash
    kind: str  # "dicom-sr" or "fhir"
    preliminary: bool = False


@dataclass(frozen=True, slots=True)
class TimepointReport:
    """What one source document says about one patient at one imaging date."""

    patient: PatientIdentity
    date: date
    source: SourceDocument
    lesions: tuple[LesionObservation, ...]
    label: str | None = None  # TID 1502 Time Point, when present
    study_uid: str | None = None
    warnings: tuple[str, ...] = ()
    setting: ClinicalSetting | None = None  # from FHIR Condition / Medication resources


@dataclass(frozen=True, slots=True)
class TrackedLesion:
    """One lesion followed over time, with the role it got when first seen."""

    key: str
    identity: LesionIdentity
    role: LesionRole
    is_nodal: bool
    site: Code | None
    first_seen: date


@dataclass(frozen=True, slots=True)
class Timepoint:
    """All observations of one patient on one imaging date, by tracked-lesion key."""

    date: date
    observations: dict[str, LesionObservation]
    preliminary: bool = False


@dataclass(frozen=True, slots=True)
class History:
    """A patient's timepoints in date order; the first is baseline."""

    patient: PatientIdentity
    lesions: dict[str, TrackedLesion]
    timepoints: tuple[Timepoint, ...]
    warnings: tuple[str, ...] = ()
    setting: ClinicalSetting | None = None

    def timepoint(self, day: date) -> Timepoint:
        """The timepoint of *day*; KeyError when there is none."""
        for timepoint in self.timepoints:
            if timepoint.date == day:
                return timepoint
        raise KeyError(day)

    def with_role(self, *roles: LesionRole) -> tuple[TrackedLesion, ...]:
        return tuple(lesion for lesion in self.lesions.values() if lesion.role in roles)


class Primary(enum.Enum):
    """The primary cancer, as far as the choice of criteria goes (contract section 2)."""

    COLORECTAL = "colorectal"
    GIST = "gist"
    HCC = "hcc"
    BREAST = "breast"
    PANCREATIC = "pancreatic"
    OTHER = "other"


class Therapy(enum.Enum):
    """The systemic therapy class, as far as the choice of criteria goes."""

    CHEMOTHERAPY = "chemotherapy"
    ANTI_VEGF = "anti-vegf"
    TKI = "tki"
    IMMUNOTHERAPY = "immunotherapy"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class ClinicalSetting:
    """The primary cancer and the therapies given (FHIR Condition / Medication*, or
    the ``primary`` / ``therapy`` query parameters)."""

    primary: Primary | None = None
    therapies: frozenset[Therapy] = frozenset()

    @classmethod
    def chosen(
        cls, primary: Primary | None, therapies: Iterable[Therapy] = ()
    ) -> ClinicalSetting | None:
        """The setting a caller named (query parameters, CLI options), None if none."""
        found = frozenset(therapies)
        return cls(primary, found) if primary is not None or found else None


@dataclass(frozen=True, slots=True)
class AssessmentParameters:
    """The protocol choices of contract section 2 that change a verdict."""

    confirmation: bool = False
    confirm_min_days: int = 28
    sd_min_days: int = 42
    pr_persistence: bool = True
    choi_hu_aggregation: str = "mean"  # or "size-weighted"
    choi_size_reference: str = "baseline"  # or "nadir"
    chun_patient_policy: str = "worst"  # or "majority"
    mrecist_pd_5mm: bool = False
    icpd_window_days: int = 56


@dataclass(frozen=True, slots=True)
class SumOfDiameters:
    """The sums a size-based verdict was decided on (criteria.md 3.3)."""

    current_mm: Decimal | None
    baseline_mm: Decimal
    nadir_mm: Decimal | None  # smallest evaluable sum before this timepoint
    pct_from_baseline: Decimal | None
    pct_from_nadir: Decimal | None  # None when the nadir is 0 (criteria.md 2)
    abs_from_nadir_mm: Decimal | None


@dataclass(frozen=True, slots=True)
class TimepointResponse:
    """One criterion's verdict at one timepoint, with what decided it.

    At baseline there is no response: ``overall`` is ``None`` and only the sums
    are filled.
    """

    date: date
    overall: Response | None
    target: Response | None = None
    non_target: Response | None = None
    new_lesions: bool = False
    best_overall: Response | None = None
    sums: SumOfDiameters | None = None
    explanation: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def is_baseline(self) -> bool:
        return self.overall is None


@dataclass(frozen=True, slots=True)
class Assessment:
    """One criterion applied to a patient's history: one response per timepoint."""

    criterion: str
    patient: PatientIdentity
    responses: tuple[TimepointResponse, ...]
    warnings: tuple[str, ...] = ()

    def at(self, day: date) -> TimepointResponse:
        for response in self.responses:
            if response.date == day:
                return response
        raise KeyError(day)
