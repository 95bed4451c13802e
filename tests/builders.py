"""Tiny constructors for domain objects: numbers you can check by hand."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from service.domain.history import build_history
from service.domain.model import (
    Code,
    History,
    LesionIdentity,
    LesionObservation,
    LesionRole,
    LesionState,
    Measurement,
    MeasurementKind,
    PatientIdentity,
    QualitativeFinding,
    SourceDocument,
    TimepointReport,
)

PATIENT = PatientIdentity("urn:tumour-response:patient-id", "P1")
LIVER = Code("10200004", "SCT", "Liver")
LUNG = Code("39607008", "SCT", "Lung")
LYMPH_NODE = Code("59441001", "SCT", "Lymph node")


def lesion(
    label: str,
    long: float | str | Decimal | None = None,
    *,
    short: float | str | None = None,
    role: LesionRole | None = None,
    state: LesionState | None = None,
    site: Code = LIVER,
    uid: str | None = None,
    fragments: tuple[float | str, ...] = (),
    hu: float | str | None = None,
    viable: float | str | None = None,
    findings: dict[str, str] | None = None,
) -> LesionObservation:
    """One lesion observation; lengths in mm (strings keep exact decimals).

    *findings* maps a sign to its value, e.g. ``{"necrosis": "new", "chun-group": "1"}``
    (keys: SNOMED signs by name, or project concepts of contract section 3).
    """
    measurements = [
        Measurement(MeasurementKind.LONG_AXIS, Decimal(str(value)))
        for value in ((long,) if long is not None else ()) + fragments
    ]
    optional = (
        (MeasurementKind.SHORT_AXIS, short),
        (MeasurementKind.MEAN_ATTENUATION, hu),
        (MeasurementKind.VIABLE_LONG_AXIS, viable),
    )
    measurements.extend(
        Measurement(kind, Decimal(str(value))) for kind, value in optional if value is not None
    )
    return LesionObservation(
        identity=LesionIdentity(tracking_uid=uid, tracking_id=label),
        role=role,
        site=site,
        is_nodal=site == LYMPH_NODE,
        state=state,
        measurements=tuple(measurements),
        findings=tuple(_finding(name, value) for name, value in (findings or {}).items()),
    )


_SIGN_CONCEPTS = {
    "necrosis": Code("6574001", "SCT", "Necrosis"),
    "fibrosis": Code("112674009", "SCT", "Fibrosis"),
    "calcification": Code("18115005", "SCT", "Pathologic calcification"),
    "haemorrhage": Code("50960005", "SCT", "Hemorrhage"),
    "cystic change": Code("367643001", "SCT", "Cyst"),
}


def _finding(name: str, value: str) -> QualitativeFinding:
    if name == "attenuation":
        code = {"homogeneous": "112160", "inhomogeneous": "112161"}[value]
        return QualitativeFinding(
            Code("attenuation", "99TR"), value, Code(code, "DCM", value.capitalize())
        )
    concept = _SIGN_CONCEPTS.get(name, Code(name, "99TR"))
    return QualitativeFinding(concept, value)


def node(label: str, short: float | str, **kwargs: object) -> LesionObservation:
    return lesion(label, short=short, site=LYMPH_NODE, **kwargs)  # type: ignore[arg-type]


def report(
    day: str, *lesions: LesionObservation, patient: PatientIdentity = PATIENT
) -> TimepointReport:
    return TimepointReport(
        patient=patient,
        date=date.fromisoformat(day),
        source=SourceDocument(uid=f"{patient.value}-{day}", kind="test"),
        lesions=lesions,
    )


def tp(day: str, *sizes: float | str | None) -> TimepointReport:
    """A timepoint of targets T1, T2, ... with these long axes (None: not assessed)."""
    return report(
        day,
        *(
            lesion(
                f"T{i}",
                size,
                state=LesionState.NOT_ASSESSED if size is None else None,
            )
            for i, size in enumerate(sizes, start=1)
        ),
    )


def history(*reports: TimepointReport) -> History:
    return build_history(reports)
