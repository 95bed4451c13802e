"""Resources as index rows (service/adapters/fhir_index.py): references rewritten to
server ids (FHIR http.html, transaction processing), at any depth, nothing else."""

from __future__ import annotations

import orjson

from service.adapters import fhir_index
from service.domain.model import PatientIdentity

PATIENT = PatientIdentity("urn:example:mrn", "P1")
ODD = 'urn:uuid:a"b\\c\u00e9\n'  # escaped in JSON


def test_references_named_in_the_rewrite_become_their_new_values_at_any_depth() -> None:
    resource = {
        "resourceType": "Observation",
        "id": "o1",
        "meta": {"versionId": "3", "profile": ["urn:profile"]},
        "focus": [{"reference": ODD}, {"reference": "BodyStructure/b1"}, {"reference": 5}],
        "derivedFrom": [{"reference": {"reference": "BodyStructure/b1"}}],
        "note": [{"text": '"reference":"BodyStructure/b1"'}],
        "partOf": [{"reference": "Procedure/unknown"}],
    }
    references = fhir_index.References(
        {ODD: "BodyStructure/s1", "BodyStructure/b1": "BodyStructure/s2"}
    )
    row = fhir_index.record(resource, PATIENT, references)
    assert orjson.loads(row.body) == {
        "resourceType": "Observation",
        "id": "o1",
        "focus": [
            {"reference": "BodyStructure/s1"},
            {"reference": "BodyStructure/s2"},
            {"reference": 5},
        ],
        "derivedFrom": [{"reference": {"reference": "BodyStructure/s2"}}],
        "note": [{"text": '"reference":"BodyStructure/b1"'}],  # a string, not a reference
        "partOf": [{"reference": "Procedure/unknown"}],
        "meta": {"profile": ["urn:profile"]},
    }
    assert row.body == fhir_index.record(resource, PATIENT).body.replace(
        orjson.dumps(ODD), b'"BodyStructure/s1"'
    ).replace(b'"reference":"BodyStructure/b1"', b'"reference":"BodyStructure/s2"')


def test_only_the_types_searched_by_identifier_keep_it_in_their_row() -> None:
    """The index by identifier holds the rows a search can find by it (issue 7: each
    entry is a page the commit writes); every body keeps its identifiers."""
    identifiers = [{"system": "urn:x", "value": "1"}, {"system": "urn:y", "value": "2"}]
    rows = {
        kind: fhir_index.record(
            {"resourceType": kind, "id": "r", "identifier": identifiers}, PATIENT
        )
        for kind in ("Observation", "Patient", "BodyStructure", "DiagnosticReport")
    }
    assert {kind: row.identifier for kind, row in rows.items()} == {
        "Observation": "urn:x|1",
        "Patient": "urn:x|1",
        "BodyStructure": None,
        "DiagnosticReport": None,
    }
    assert all(orjson.loads(row.body)["identifier"] == identifiers for row in rows.values())
