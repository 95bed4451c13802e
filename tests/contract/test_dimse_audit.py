"""The audit trail of the DIMSE listener (issue 6): one AuditEvent per association, a
rejected one included, from pynetdicom as the SCU against the SCP in this process."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from sqlalchemy.engine import Engine

from service.adapters import audit, fhir_index
from service.config import Settings
from service.entrypoints import dimse
from tests.e2e.conftest import free_port
from tests.fhir_validation import validate_resource
from tests.sr_factory import LesionSpec, make_sr, sr_bytes

AE_TITLE = "TUMOUR_RESPONSE"


@pytest.fixture
def port(migrated_engine: Engine) -> Iterator[int]:
    """The SCP on a free port, one association at a time."""
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, dimse_port=free_port(), dimse_max_associations=1
    )
    server = dimse.start(settings, migrated_engine)
    yield settings.dimse_port
    server.shutdown()


def _events(engine: Engine, expected: int) -> list[dict[str, Any]]:
    """The stored AuditEvents, oldest first, once *expected* are there (an association's
    is saved as it ends, in the SCP's thread)."""
    deadline = time.monotonic() + 10
    while True:
        bodies = audit.search(engine, audit.Query())[1]
        if len(bodies) >= expected or time.monotonic() > deadline:
            return [fhir_index.loads(body) for body in reversed(bodies)]
        time.sleep(0.05)


def test_associations_are_audited_rejected_ones_included(
    port: int, migrated_engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "sr.dcm"
    lesions = [LesionSpec("T1", long_axis_mm=30)]
    path.write_bytes(
        sr_bytes(make_sr(patient_id="DIMSE-1", study_date="20240105", lesions=lesions))
    )
    scu = AE(ae_title="AUDIT_SCU")
    scu.add_requested_context(Verification)
    scu.add_requested_context(dcmread(path).SOPClassUID)
    first = scu.associate("127.0.0.1", port, ae_title=AE_TITLE)
    assert first.is_established
    second = scu.associate("127.0.0.1", port, ae_title=AE_TITLE)  # over the limit of 1
    assert second.is_rejected
    assert first.send_c_echo().Status == 0
    assert first.send_c_store(path).Status == 0
    first.release()
    stored, rejected = _events(migrated_engine, 2)  # by when each association began
    for event in (rejected, stored):
        validate_resource(event)
        assert event["type"]["code"] == "110104"
        assert event["agent"][0]["who"] == {"identifier": {"value": "AUDIT_SCU"}}
        assert event["agent"][0]["network"]["address"] == "127.0.0.1"
    assert (rejected["action"], rejected["outcome"]) == ("E", "4")
    assert rejected["outcomeDesc"] == "association rejected" and "entity" not in rejected
    assert (stored["action"], stored["outcome"]) == ("C", "0")
    uid = f"urn:oid:{dcmread(path).SOPInstanceUID}"
    identifiers = [entity["what"].get("identifier") for entity in stored["entity"]]
    assert {"system": "urn:dicom:uid", "value": uid} in identifiers
