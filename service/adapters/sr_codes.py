"""Code tables for the DICOM SR and FHIR readers (:mod:`service.adapters.sr_reader`,
:mod:`service.adapters.fhir_reader`), and the normalisations both apply.

Every concept is a ``(code value, coding scheme designator)`` key with the designator
in upper case, so ``NCIt`` and ``NCIT`` compare equal. Sources: contract.md section 3
("What the service reads") and interop.md sections 1.1-1.6 (PS3.16 TID 1500, 1501,
1410, 1411, 1502, 300, CID 6145).

Retired SNOMED RT codes (scheme ``SRT``) are translated to SNOMED CT (``SCT``) with
:data:`SRT_TO_SCT`, a project copy of the few pairs of pydicom's private
``pydicom.sr._snomed_dict`` that producers of measurement reports use
(interop.md 1.5).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Final

from service.domain.model import Code, LesionRole, LesionState, MeasurementKind, QualitativeFinding

Key = tuple[str, str]

PROJECT_SCHEME: Final = "99TR"  # contract section 3: the project code system

# SRT code value -> (SCT code value, SCT meaning).
SRT_TO_SCT: Final[dict[str, tuple[str, str]]] = {
    # concept names
    "G-C0E3": ("363698007", "Finding Site"),
    "G-C036": ("370129005", "Measurement Method"),
    "G-A1F8": ("106233006", "Topographical modifier"),
    "G-C171": ("272741003", "Laterality"),
    "G-A185": ("103339001", "Long axis"),
    "G-A186": ("103340004", "Short axis"),
    "M-02550": ("81827009", "Diameter"),
    "G-D7FE": ("410668003", "Length"),
    "G-A166": ("42798000", "Area"),
    "G-A16A": ("131184002", "Area of defined region"),
    "G-D705": ("118565006", "Volume"),
    "R-00317": ("373098007", "Mean"),
    # finding types
    "M-01100": ("52988006", "Lesion"),
    "M-03010": ("27925004", "Nodule"),
    "M-03000": ("4147007", "Mass"),
    # anatomic sites
    "T-62000": ("10200004", "Liver"),
    "T-28000": ("39607008", "Lung"),
    "T-C4000": ("59441001", "Lymph node"),
    "T-B3000": ("23451007", "Adrenal gland"),
    "T-D016E": ("272673000", "Bone"),
    "T-A0100": ("12738006", "Brain"),
    "T-71000": ("64033007", "Kidney"),
    "T-65000": ("15776009", "Pancreas"),
    "T-C3000": ("78961009", "Spleen"),
    "T-29000": ("3120008", "Pleura"),
    "T-04000": ("76752008", "Breast"),
    "T-01000": ("39937001", "Skin"),
    "T-59300": ("71854001", "Colon"),
    "T-57000": ("69695003", "Stomach"),
    "T-D3300": ("72410000", "Mediastinum"),
    "T-1A000": ("87784001", "Soft tissue"),
    "T-B6000": ("69748006", "Thyroid"),
    "T-87000": ("15497006", "Ovary"),
    "T-92000": ("41216001", "Prostate"),
    "T-74000": ("89837001", "Bladder"),
    "T-56000": ("32849002", "Esophagus"),
    "T-59600": ("34402009", "Rectum"),
    "T-58000": ("30315005", "Small intestine"),
    "T-39000": ("76848001", "Pericardium"),
    "T-13001": ("71616004", "Muscle"),
}

# TID 1500 rows 1 and 6 (interop.md 1.1).
REPORT_TITLE: Final[Key] = ("126000", "DCM")
REPORT_TEMPLATE: Final = "1500"
IMAGING_MEASUREMENTS: Final[Key] = ("126010", "DCM")
MEASUREMENT_GROUP: Final[Key] = ("125007", "DCM")

# Group content (interop.md 1.2, 1.3).
TRACKING_ID: Final[Key] = ("112039", "DCM")
TRACKING_UID: Final[Key] = ("112040", "DCM")
FINDING: Final[Key] = ("121071", "DCM")
FINDING_SITE: Final[Key] = ("363698007", "SCT")
BASELINE_CATEGORY: Final[Key] = ("112016", "DCM")
TUMOR_STATE: Final[Key] = ("C96643", "NCIT")
DERIVATION: Final[Key] = ("121401", "DCM")
TIME_POINT: Final[Key] = ("C2348792", "UMLS")

# Free-text labels written by dcmjs/OHIF as codes of a private scheme (interop.md 1.3).
LABEL_SCHEMES: Final = frozenset({"99DCMJS", "CST4"})

# Group items that are not qualitative findings (interop.md 1.2, 1.4, 3a).
NOT_FINDINGS: Final[frozenset[Key]] = frozenset(
    {
        ("276214006", "SCT"),  # Finding category
        FINDING,
        FINDING_SITE,
        ("370129005", "SCT"),  # Measurement Method
        BASELINE_CATEGORY,
        TUMOR_STATE,
        TRACKING_ID,
        TRACKING_UID,
        ("C67447", "NCIT"),  # Activity Session
        TIME_POINT,
        ("126070", "DCM"),  # Subject Time Point Identifier
        ("126071", "DCM"),  # Protocol Time Point Identifier
        ("126072", "DCM"),  # Time Point Type
        ("126073", "DCM"),  # Time Point Order
        ("128740", "DCM"),  # Longitudinal Temporal Offset from Event
        ("111001", "DCM"),  # Algorithm Name
        ("111003", "DCM"),  # Algorithm Version
    }
)

# CID 6145 Baseline Category and the NCIt new-lesion codes (contract section 3).
ROLES: Final[dict[Key, LesionRole]] = {
    ("112074", "DCM"): LesionRole.TARGET,
    ("112075", "DCM"): LesionRole.NON_TARGET,
    ("112076", "DCM"): LesionRole.NON_LESION,
    ("C94522", "NCIT"): LesionRole.NEW,
    ("C139127", "NCIT"): LesionRole.NEW_TARGET,
    ("C139126", "NCIT"): LesionRole.NEW_NON_TARGET,
}

# NCIt values of C96643 Tumor State; other states are matched by their meaning.
STATES: Final[dict[Key, LesionState]] = {
    ("C25626", "NCIT"): LesionState.PRESENT,
    ("C48190", "NCIT"): LesionState.ABSENT,
    ("C94525", "NCIT"): LesionState.MERGED,
    ("C86071", "NCIT"): LesionState.EQUIVOCAL,
    ("C123645", "NCIT"): LesionState.UNEQUIVOCAL_PROGRESSION,
}

# NUM concepts read as measurements (interop.md 1.5; SRT keys are translated first).
MEASUREMENT_KINDS: Final[dict[Key, MeasurementKind]] = {
    ("103339001", "SCT"): MeasurementKind.LONG_AXIS,
    ("103340004", "SCT"): MeasurementKind.SHORT_AXIS,
    ("81827009", "SCT"): MeasurementKind.DIAMETER,
    ("112181", "DCM"): MeasurementKind.MEAN_ATTENUATION,
    ("viable-long-axis", PROJECT_SCHEME): MeasurementKind.VIABLE_LONG_AXIS,
}
ATTENUATION: Final[Key] = ("112031", "DCM")  # a mean only with Derivation = Mean
MEAN: Final[Key] = ("373098007", "SCT")
LENGTH: Final[Key] = ("410668003", "SCT")  # a diameter only when nothing better exists
SLICE_THICKNESS: Final[Key] = ("slice-thickness", PROJECT_SCHEME)

# UCUM units: millimetres per unit of length, and the Hounsfield unit.
MM_PER_UNIT: Final = {"mm": Decimal(1), "cm": Decimal(10), "um": Decimal("0.001")}
DIMENSIONLESS: Final = "1"  # old dcmjs output writes lengths with unit "1"
HOUNSFIELD: Final = "[hnsf'U]"

LYMPH_NODE: Final = "59441001"
_NODE: Final = re.compile(r"\bnodes?\b|\blymph", re.IGNORECASE)  # "Lymph node", "Axillary nodes"
STATES_BY_TEXT: Final = {state.value: state for state in LesionState}


def is_nodal(site: Code) -> bool:
    """A lymph node site: SCT 59441001 or any site whose meaning names a node."""
    return site.value == LYMPH_NODE or _NODE.search(site.meaning) is not None


def state_of(value: Code) -> LesionState | None:
    """A Tumor State value by its NCIt code, else by its text (contract section 3)."""
    found = STATES.get((value.value, value.scheme.upper()))
    return found or STATES_BY_TEXT.get(value.meaning.strip().upper())


def coded_finding(concept: Code, value: Code) -> QualitativeFinding:
    """A coded finding; its text is the code itself in the project scheme, else the
    meaning (so ``chun-group`` = ``2`` reads the same from SR and FHIR)."""
    shown = value.value if value.scheme.upper() == PROJECT_SCHEME else value.meaning
    return QualitativeFinding(concept, shown or value.value, value)
