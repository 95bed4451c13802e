"""A FHIR resource as the resource index keeps it (:mod:`.fhir_index` makes them,
:mod:`.db` stores them): plain data, so that the SR and FHIR reader process
(:mod:`service.entrypoints.sr_reader_process`) can make them without the storage."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from service.domain.model import PatientIdentity


@dataclass(frozen=True, slots=True)
class FhirRecord:
    """A FHIR resource to keep in the resource index, with what it is searched by."""

    resource_type: str
    resource_id: str
    body: bytes  # the resource JSON, without meta.versionId / meta.lastUpdated
    patient: PatientIdentity | None = None
    identifier: str | None = None  # "system|value" of its business identifier
    effective_date: date | None = None
