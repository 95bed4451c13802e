"""A FHIR body (an Observation or a Bundle) read into reports, with its resources under
their server ids as the resource index keeps them: what ``POST /assessments``,
``POST /fhir`` and ``POST /fhir/Observation`` read, in the serving process or in the
reader process (:mod:`service.entrypoints.sr_reader_process`), which is why this module
needs nothing of the storage or of HTTP.

Strict JSON within the size limits of reliability.md section 5 (:func:`parse`), then
:func:`.fhir_reader.read_fhir` and the ids (:func:`read`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from service.adapters import fhir_index, fhir_reader, fhir_writer, strict_json
from service.adapters.content_digest import digest
from service.adapters.fhir_record import FhirRecord
from service.domain.errors import TooLarge
from service.domain.model import PatientIdentity, TimepointReport

Resource = dict[str, Any]
_NO_PATIENT: Final = PatientIdentity("", "")


@dataclass(frozen=True, slots=True)
class Limits:
    """The caps on a FHIR body (reliability.md section 5)."""

    bundle_bytes: int
    resource_bytes: int
    json: strict_json.JsonLimits


@dataclass(frozen=True, slots=True)
class Received:
    """The input's resources under their server ids, ready for the index."""

    records: tuple[FhirRecord | None, ...]  # None: a Patient, answered by its index entry
    locations: tuple[str, ...]  # "Type/id" per input resource


@dataclass(frozen=True, slots=True)
class FhirRead:
    """What a FHIR body holds: its reports, the digest of its canonical form and its
    resources as received."""

    reports: tuple[TimepointReport, ...]
    digest: str
    received: Received


def parse(data: bytes, limits: Limits, limit: int | None = None) -> Any:
    """Strict JSON: the body at most *limit* bytes (default the Bundle limit), a resource
    other than a Bundle at most the resource limit."""
    limit = limits.bundle_bytes if limit is None else limit
    if len(data) > limit:
        raise TooLarge(f"the body is over {limit} bytes")
    document = strict_json.loads(data, limits.json)
    if (
        isinstance(document, dict)
        and document.get("resourceType") != "Bundle"
        and len(data) > limits.resource_bytes
    ):
        raise TooLarge(f"a resource over {limits.resource_bytes} bytes")
    return document


def read(
    document: Any, patient_system: str, resolve_patient: fhir_reader.PatientResolver
) -> FhirRead:
    """The reports of *document* (parsed by :func:`parse`) and its resources."""
    found = digest(fhir_reader.canonical(document)) if isinstance(document, dict) else ""
    reading = fhir_reader.read_fhir(
        document, digest=found, patient_system=patient_system, resolve_patient=resolve_patient
    )
    return FhirRead(tuple(reading.reports), found, _assign_ids(reading, document))


def _assign_ids(read: fhir_reader.FhirInput, document: Resource) -> Received:
    """Server ids for the input resources (stable: the same content gets the same id),
    references between them rewritten (FHIR http.html, transaction processing)."""
    entries = document.get("entry", []) if document.get("resourceType") == "Bundle" else [{}]
    ids: list[str] = []
    rewrite: dict[str, str] = {}
    for resource, subject, entry in zip(read.resources, read.subjects, entries, strict=True):
        kind = resource["resourceType"]
        if kind == "Patient" and subject is not None:
            new_id = fhir_writer.patient_id(subject)
        else:
            identifiers = resource.get("identifier")
            first = identifiers[0] if isinstance(identifiers, list) and identifiers else None
            key = fhir_reader.identifier_text(first) or digest(fhir_reader.canonical(resource))
            new_id = fhir_writer.resource_id(subject or _NO_PATIENT, "received", kind, key)
        ids.append(new_id)
        for old in (entry.get("fullUrl"), f"{kind}/{resource.get('id')}"):
            if isinstance(old, str):
                rewrite[old] = f"{kind}/{new_id}"
    references = fhir_index.References(rewrite)
    records: list[FhirRecord | None] = []
    for resource, subject, new_id in zip(read.resources, read.subjects, ids, strict=True):
        if resource["resourceType"] == "Patient":
            records.append(None)
            continue
        records.append(fhir_index.record({**resource, "id": new_id}, subject, references))
    locations = tuple(
        f"{resource['resourceType']}/{new_id}"
        for resource, new_id in zip(read.resources, ids, strict=True)
    )
    return Received(tuple(records), locations)
