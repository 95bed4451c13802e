"""A report's lesion observations as the store keeps them: the ``lesions`` column of a
document (each lesion's fields with its measurements' under ``measurements``, as JSON;
decimals as their exact text, no measurement that is not finite; compressed,
:func:`.json_bytes.compress`, since 2026-12-06: a 10-lesion report's 9.8 KB take ~1.5,
two pages fewer a commit; the JSON as it is before, read as well), the fields of the
lesion and measurement tables that hold the documents stored before that column
(db_schema). The patient checkpoint keeps its baseline observations the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import orjson

from service.adapters import json_bytes
from service.domain.model import (
    Code,
    Coordinates,
    LesionIdentity,
    LesionObservation,
    LesionRole,
    LesionState,
    Measurement,
    MeasurementKind,
    Provenance,
    QualitativeFinding,
)


def lesion_fields(lesion: LesionObservation) -> dict[str, Any]:
    """A lesion of the ``lesions`` column (a lesion row's fields)."""
    site, merged_into = lesion.site, lesion.merged_into
    return {
        "tracking_uid": lesion.identity.tracking_uid,
        "tracking_id": lesion.identity.tracking_id,
        "role": None if lesion.role is None else lesion.role.value,
        "site_code": None if site is None else site.value,
        "site_scheme": None if site is None else site.scheme,
        "site_meaning": None if site is None else site.meaning,
        "is_nodal": lesion.is_nodal,
        "state": None if lesion.state is None else lesion.state.value,
        "merged_into_uid": None if merged_into is None else merged_into.tracking_uid,
        "merged_into_id": None if merged_into is None else merged_into.tracking_id,
        "slice_thickness_mm": lesion.slice_thickness_mm,
        "findings": [
            {
                "code": finding.concept.value,
                "scheme": finding.concept.scheme,
                "meaning": finding.concept.meaning,
                "value": finding.value,
                "value_code": None if finding.code is None else _code_json(finding.code),
            }
            for finding in lesion.findings
        ],
    }


def measurement_fields(measurement: Measurement) -> dict[str, Any]:
    """A measurement of the ``lesions`` column (a measurement row's fields); raises
    ValueError for a value that is not finite (what the measurement table's CHECK
    refused; the domain's Measurement refuses it first)."""
    if not measurement.value.is_finite():
        raise ValueError(f"a measurement of {measurement.value} is not stored")
    return {
        "kind": measurement.kind.value,
        "value": measurement.value,
        "path": measurement.provenance.path,
        "referenced_sop_uid": measurement.provenance.referenced_sop_uid,
        "coordinates": [_coordinates_json(c) for c in measurement.provenance.coordinates] or None,
    }


def encode(lesions: Iterable[LesionObservation]) -> bytes:
    """The ``lesions`` column of a document."""
    return json_bytes.compress(dumps(plain(lesions)))


def plain(lesions: Iterable[LesionObservation]) -> list[dict[str, Any]]:
    """Each lesion's row fields with its measurements' under ``measurements``, as JSON
    data for :func:`dumps`."""
    return [
        {
            **lesion_fields(lesion),
            "measurements": [measurement_fields(m) for m in lesion.measurements],
        }
        for lesion in lesions
    ]


def dumps(value: Any) -> bytes:
    """*value* as JSON, with the decimals of :func:`plain` as their exact text."""
    return json_bytes.dumps(value, default=_exact_text)


def _exact_text(value: object) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not stored in the lesions column")


# Stored enum values to members: a dictionary look-up, cheaper than calling the enum.
_ROLES = {role.value: role for role in LesionRole}
_STATES = {state.value: state for state in LesionState}
_KINDS = {kind.value: kind for kind in MeasurementKind}


def decode(column: bytes) -> tuple[LesionObservation, ...]:
    """The lesions of :func:`encode`, or of a column written before it compressed them
    (a JSON array)."""
    return read(orjson.loads(json_bytes.column_json(column)))


def read(found: Iterable[Mapping[str, Any]]) -> tuple[LesionObservation, ...]:
    """The lesions of :func:`plain` data."""
    return tuple(
        lesion(fields, tuple(map(measurement, fields["measurements"]))) for fields in found
    )


def lesion(fields: Mapping[Any, Any], measurements: tuple[Measurement, ...]) -> LesionObservation:
    """The lesion of a lesion row or of the ``lesions`` column."""
    merged_uid, merged_id = fields["merged_into_uid"], fields["merged_into_id"]
    role, state, site_code = fields["role"], fields["state"], fields["site_code"]
    thickness, findings = fields["slice_thickness_mm"], fields["findings"]
    return LesionObservation(
        identity=LesionIdentity(fields["tracking_uid"], fields["tracking_id"]),
        role=None if role is None else _ROLES[role],
        site=None
        if site_code is None
        else Code(site_code, fields["site_scheme"], fields["site_meaning"]),
        is_nodal=fields["is_nodal"],
        state=None if state is None else _STATES[state],
        measurements=measurements,
        findings=tuple(map(_finding, findings)) if findings else (),
        merged_into=None
        if merged_uid is None and merged_id is None
        else LesionIdentity(merged_uid, merged_id),
        slice_thickness_mm=None if thickness is None else _exact(thickness),
    )


def _finding(found: Mapping[str, Any]) -> QualitativeFinding:
    value_code = found.get("value_code")
    return QualitativeFinding(
        Code(found["code"], found["scheme"], found["meaning"]),
        found["value"],
        None if value_code is None else Code(*value_code),
    )


def measurement(fields: Mapping[Any, Any]) -> Measurement:
    """The measurement of a measurement row or of the ``lesions`` column."""
    coordinates = fields["coordinates"]
    return Measurement(
        kind=_KINDS[fields["kind"]],
        value=_exact(fields["value"]),
        provenance=Provenance(
            fields["path"],
            fields["referenced_sop_uid"],
            tuple(map(_coordinates, coordinates)) if coordinates else (),
        ),
    )


def _exact(value: Decimal | str) -> Decimal:
    """A decimal column's value: DecimalText gives a Decimal, the ``lesions`` column its text."""
    return value if isinstance(value, Decimal) else Decimal(value)


def _coordinates_json(coordinates: Coordinates) -> dict[str, Any]:
    return {
        "graphic_type": coordinates.graphic_type,
        "points": list(coordinates.points),
        "referenced_sop_uid": coordinates.referenced_sop_uid,
        "frame_of_reference_uid": coordinates.frame_of_reference_uid,
    }


def _coordinates(found: dict[str, Any]) -> Coordinates:
    return Coordinates(
        graphic_type=found["graphic_type"],
        points=tuple(map(float, found["points"])),
        referenced_sop_uid=found["referenced_sop_uid"],
        frame_of_reference_uid=found["frame_of_reference_uid"],
    )


def _code_json(code: Code) -> list[str]:
    return [code.value, code.scheme, code.meaning]
