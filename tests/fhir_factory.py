"""Build FHIR R4 measurement input for tests, in the shapes of contract section 3.

:func:`measurement_bundle` writes, per lesion, a BodyStructure (Tracking Identifier DCM
112039 + Tracking UID DCM 112040, the UID of :func:`tests.sr_factory.tracking_uid`, so a
lesion is the same one in SR and FHIR input), an IG-style long-axis Observation (SNOMED
103339001, UCUM) with ``focus`` on it, and a Baseline Category Observation (DCM 112016).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from tests.sr_factory import tracking_uid

SNOMED = "http://snomed.info/sct"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
UCUM = "http://unitsofmeasure.org"
PATIENT_SYSTEM = "urn:tumour-response:patient-id"

Resource = dict[str, Any]


def encoded(document: object) -> bytes:
    """*document* as the JSON bytes of a request body."""
    return json.dumps(document).encode()


def coding(system: str, code: str, display: str = "") -> Resource:
    found = {"system": system, "code": code}
    if display:
        found["display"] = display
    return {"coding": [found]}


def body_structure(patient_id: str, label: str) -> Resource:
    return {
        "resourceType": "BodyStructure",
        "identifier": [
            {"type": coding(DCM, "112039", "Tracking Identifier"), "value": label},
            {
                "type": coding(DCM, "112040", "Tracking Unique Identifier"),
                "system": "urn:dicom:uid",
                "value": f"urn:oid:{tracking_uid(patient_id, label)}",
            },
        ],
        "location": coding(SNOMED, "10200004", "Liver"),
        "patient": {"identifier": {"system": PATIENT_SYSTEM, "value": patient_id}},
    }


def observation(patient_id: str, day: str, focus: str, code: Resource, **value: Any) -> Resource:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": code,
        "subject": {"identifier": {"system": PATIENT_SYSTEM, "value": patient_id}},
        "effectiveDateTime": day,
        "focus": [{"reference": focus}],
        **value,
    }


def long_axis(value: float, unit: str = "mm") -> Resource:
    return {"valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit}}


def measurement_bundle(
    patient_id: str,
    day: str,
    lesions: Sequence[tuple[str, float]],
    bundle_type: str = "transaction",
    unit: str = "mm",
) -> Resource:
    """A Bundle of one timepoint: per (label, long axis) a target lesion."""
    entries: list[Resource] = []
    for label, size in lesions:
        lesion_url = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{patient_id}/{label}')}"
        axis = observation(
            patient_id,
            day,
            lesion_url,
            coding(SNOMED, "103339001", "Long axis"),
            identifier=[{"system": "urn:example:obs", "value": f"{patient_id}-{day}-{label}"}],
            **long_axis(size, unit),
        )
        role = observation(
            patient_id,
            day,
            lesion_url,
            coding(DCM, "112016", "Baseline Category"),
            valueCodeableConcept=coding(DCM, "112074", "Target Lesion at Baseline"),
        )
        entries.append({"fullUrl": lesion_url, "resource": body_structure(patient_id, label)})
        entries.extend(
            {
                "fullUrl": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{lesion_url}/{day}/{n}')}",
                "resource": resource,
            }
            for n, resource in enumerate((axis, role))
        )
    if bundle_type in ("transaction", "batch"):
        for entry in entries:
            entry["request"] = {"method": "POST", "url": entry["resource"]["resourceType"]}
    return {"resourceType": "Bundle", "type": bundle_type, "entry": entries}
