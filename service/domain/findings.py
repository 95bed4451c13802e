"""Morphology and ESGAR ancillary findings, read from a lesion's qualitative findings.

Contract section 3 ("Morphology and ancillary findings") names the concepts;
criteria.md section 9 says how they are used: they are carried into the report and
never change a response category. Chun's morphology groups (criteria.md 7) and
Choi's intratumoral nodules (criteria.md 5) are read here too.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal

from service.domain.model import LesionObservation, QualitativeFinding, Timepoint, TrackedLesion

PROJECT_SCHEME = "99TR"


class Sign(enum.Enum):
    """A finding beyond size (criteria.md 9 and 7)."""

    NECROSIS = "necrosis"
    FIBROSIS = "fibrosis"
    CALCIFICATION = "calcification"
    HAEMORRHAGE = "haemorrhage"
    CYSTIC_CHANGE = "cystic change"
    ATTENUATION = "attenuation"  # homogeneous / inhomogeneous
    INTERFACE = "tumour-liver interface"  # sharp / ill-defined
    PERIPHERAL_RIM = "peripheral rim"  # present / partially-resolved / resolved
    INTRATUMORAL_NODULE = "intratumoral nodule"  # new / enlarged / absent
    CHUN_GROUP = "Chun morphology group"  # 1 / 2 / 3


# (code value, scheme) of the concept name -> sign (contract section 3).
_CONCEPTS: dict[tuple[str, str], Sign] = {
    ("6574001", "SCT"): Sign.NECROSIS,
    ("112674009", "SCT"): Sign.FIBROSIS,
    ("18115005", "SCT"): Sign.CALCIFICATION,
    ("50960005", "SCT"): Sign.HAEMORRHAGE,
    ("367643001", "SCT"): Sign.CYSTIC_CHANGE,
    ("chun-group", PROJECT_SCHEME): Sign.CHUN_GROUP,
    ("intratumoral-nodule", PROJECT_SCHEME): Sign.INTRATUMORAL_NODULE,
    ("tumour-liver-interface", PROJECT_SCHEME): Sign.INTERFACE,
    ("peripheral-rim", PROJECT_SCHEME): Sign.PERIPHERAL_RIM,
    ("attenuation", PROJECT_SCHEME): Sign.ATTENUATION,
    ("112082", "DCM"): Sign.INTERFACE,  # DCM "Interface"
}
# Coded values that name the sign whatever the concept (DCM Homogeneous / Inhomogeneous).
_VALUES: dict[tuple[str, str], tuple[Sign, str]] = {
    ("112160", "DCM"): (Sign.ATTENUATION, "homogeneous"),
    ("112161", "DCM"): (Sign.ATTENUATION, "inhomogeneous"),
}
_GROUP_VALUES = {"1", "2", "3"}

# Values that speak for a response when size barely changes (criteria.md 9, [I]):
# tumour turned to necrosis, fibrosis, calcification, cyst or haemorrhage, a
# homogeneous lesion with a sharp interface.
_RESPONSE_SIGNS: dict[Sign, frozenset[str]] = {
    Sign.NECROSIS: frozenset({"new", "increased"}),
    Sign.FIBROSIS: frozenset({"new", "increased", "present"}),
    Sign.CALCIFICATION: frozenset({"new", "increased"}),
    Sign.HAEMORRHAGE: frozenset({"new"}),
    Sign.CYSTIC_CHANGE: frozenset({"new", "increased", "present"}),
    Sign.ATTENUATION: frozenset({"homogeneous"}),
    Sign.INTERFACE: frozenset({"sharp"}),
    Sign.PERIPHERAL_RIM: frozenset({"resolved", "partially-resolved"}),
}
SMALL_CHANGE_PERCENT = Decimal(20)  # |change from baseline| under this: size "barely changes"


@dataclass(frozen=True, slots=True)
class Ancillary:
    """One sign of one lesion at one timepoint."""

    lesion: TrackedLesion
    sign: Sign
    value: str

    def __str__(self) -> str:
        return f"{self.lesion.identity}: {self.sign.value} {self.value}"

    @property
    def suggests_response(self) -> bool:
        return self.value in _RESPONSE_SIGNS.get(self.sign, frozenset())


def sign_of(finding: QualitativeFinding) -> tuple[Sign, str] | None:
    """The sign a finding states and its normalised value, if it states one."""
    if finding.code is not None:
        coded = _VALUES.get((finding.code.value, finding.code.scheme))
        if coded is not None:
            return coded
    sign = _CONCEPTS.get((finding.concept.value, finding.concept.scheme))
    if sign is None:
        return None
    return sign, finding.value.strip().lower().replace(" ", "-")


def signs(observation: LesionObservation) -> dict[Sign, str]:
    """Every sign stated for one lesion at one timepoint (the last one wins)."""
    found: dict[Sign, str] = {}
    for finding in observation.findings:
        stated = sign_of(finding)
        if stated is not None:
            found[stated[0]] = stated[1]
    return found


def ancillary_findings(lesions: dict[str, TrackedLesion], timepoint: Timepoint) -> list[Ancillary]:
    """The ESGAR ancillary findings of a timepoint, lesion by lesion (criteria.md 9)."""
    return [
        Ancillary(lesions[key], sign, value)
        for key, observation in timepoint.observations.items()
        for sign, value in signs(observation).items()
        if sign not in (Sign.CHUN_GROUP, Sign.INTRATUMORAL_NODULE)
    ]


def chun_group(observation: LesionObservation | None) -> int | None:
    """Chun morphology group 1-3: as stated, else derived from its features (criteria.md 7).

    Derivation [I]: all three features at group-1 values -> 1; heterogeneous
    attenuation and an ill-defined interface -> 3; any other stated feature -> 2.
    """
    if observation is None:
        return None
    found = signs(observation)
    stated = found.get(Sign.CHUN_GROUP)
    if stated in _GROUP_VALUES:
        return int(stated)
    attenuation = found.get(Sign.ATTENUATION)
    interface = found.get(Sign.INTERFACE)
    rim = found.get(Sign.PERIPHERAL_RIM)
    if attenuation is None and interface is None:
        return None
    if attenuation == "homogeneous" and interface == "sharp" and rim in (None, "resolved"):
        return 1
    if attenuation == "inhomogeneous" and interface == "ill-defined":
        return 3
    return 2


def intratumoral_nodule_progression(observation: LesionObservation | None) -> bool:
    """A new or enlarging intratumoral nodule (Choi PD, criteria.md 5)."""
    if observation is None:
        return False
    return signs(observation).get(Sign.INTRATUMORAL_NODULE) in ("new", "enlarged")
