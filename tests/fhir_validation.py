"""Validate emitted FHIR JSON with fhir.resources' R4B models (tests only)."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B import get_fhir_model_class


def validate_resource(resource: dict[str, Any]) -> None:
    """Raise if *resource* is not a valid R4B resource of its declared type."""
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def validate_bundle(bundle: dict[str, Any]) -> None:
    """The Bundle and every resource in it."""
    validate_resource(bundle)
    for entry in bundle.get("entry", []):
        validate_resource(entry["resource"])
