"""FHIR resources as rows of the resource index (:class:`~service.adapters.fhir_record.FhirRecord`).

The index serves the FHIR REST face (contract section 2; interop.md 3d): reads by
``Type/id`` and searches by patient, business identifier (token ``system|value``) and
effective date. Patients are indexed as minimal Patient resources carrying the
identifier that keys their history (contract section 3, "Patient").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any, Final

import orjson

from service.adapters import fhir_writer, json_bytes
from service.adapters.fhir_reader import identifier_text
from service.adapters.fhir_record import FhirRecord
from service.domain.model import PatientIdentity

Resource = dict[str, Any]

# A "reference" member with a string value in orjson's compact output, the value's JSON
# text as group 1; a quote inside a string is escaped there, so it never matches inside one.
_REFERENCE: Final = re.compile(rb'"reference":("[^"\\]*(?:\\.[^"\\]*)*")')

# The resource types a search finds by business identifier (``identifier`` of
# GET /fhir/Observation and /fhir/Patient, and an Observation's ``If-None-Exist``). Only
# their rows keep the identifier: the index on it would otherwise take ~11 more entries a
# timepoint (its BodyStructures' tracking UIDs, its DiagnosticReport's), each on a page
# of its own that the commit writes (issue 7).
SEARCHED_BY_IDENTIFIER: Final = frozenset({"Observation", "Patient"})


def patient_resource(patient: PatientIdentity) -> Resource:
    """The Patient resource that names *patient*; its id is stable."""
    return {
        "resourceType": "Patient",
        "id": fhir_writer.patient_id(patient),
        "identifier": [{"system": patient.system, "value": patient.value}],
    }


class References:
    """Rewrites every ``reference`` (at any depth) of a serialised resource that is a key
    of *rewrite* to its value: one regular-expression pass over the body, instead of a
    copy of the resource tree."""

    def __init__(self, rewrite: Mapping[str, str]) -> None:
        self._encoded = {
            json_bytes.dumps(old): json_bytes.dumps(new) for old, new in rewrite.items()
        }

    def __call__(self, body: bytes) -> bytes:
        return _REFERENCE.sub(self._rewritten, body)

    def _rewritten(self, reference: re.Match[bytes]) -> bytes:
        return b'"reference":' + self._encoded.get(reference[1], reference[1])


def record(
    resource: Resource, patient: PatientIdentity | None, references: References | None = None
) -> FhirRecord:
    """*resource* as an index row, its *references* rewritten; ``meta`` is left out (the
    row keeps the version)."""
    body = resource
    if "meta" in resource:
        body = {name: value for name, value in resource.items() if name != "meta"}
        profile = (resource["meta"] or {}).get("profile")
        if profile:
            body["meta"] = {"profile": profile}
    identifiers = resource.get("identifier")
    first = identifiers[0] if isinstance(identifiers, list) and identifiers else identifiers
    effective = resource.get("effectiveDateTime")
    text = fhir_writer.dumps(body)
    kind = resource["resourceType"]
    return FhirRecord(
        resource_type=kind,
        resource_id=resource["id"],
        body=text if references is None else references(text),
        patient=patient,
        identifier=identifier_text(first) if kind in SEARCHED_BY_IDENTIFIER else None,
        effective_date=_day(effective),
    )


def with_version(body: bytes, version: int, last_updated: str) -> Resource:
    """A stored body with ``meta.versionId`` and ``meta.lastUpdated`` of its row."""
    resource = loads(body)
    meta = {**(resource.get("meta") or {}), "versionId": str(version), "lastUpdated": last_updated}
    return {"resourceType": resource["resourceType"], "id": resource["id"], "meta": meta} | {
        name: value
        for name, value in resource.items()
        if name not in ("resourceType", "id", "meta")
    }


def loads(body: bytes) -> Resource:
    """A stored resource body as a dict."""
    resource: Resource = orjson.loads(body)
    return resource


def _day(value: Any) -> date | None:
    if isinstance(value, str) and len(value) >= 10:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None
