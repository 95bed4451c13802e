"""Inputs for the fault and concurrency tests, each channel's real client, and the
verifier of what a database holds afterwards (reliability.md section 8 item 1, the ack
ledger).

Every input is an :class:`Item`: the body a channel sends and the document UID the
service stores it under (the SOP Instance UID of an SR, the identifier of a Bundle), with
the shape of its report as the service's own readers see it, so a stored document can
be checked complete without hard-coded counts.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bench.bodies import STOW_CONTENT_TYPE, stamp, stow_body, template
from service.adapters import fhir_reader, lesion_codec, strict_json
from service.adapters.db import StoredResource, open_store
from service.adapters.db_schema import (
    audit_event,
    audit_patient,
    document,
    lesion,
    measurement,
    metadata,
)
from service.domain.model import TimepointReport
from service.entrypoints import dicom_status
from tests.fhir_factory import measurement_bundle

Channel = Literal["stow", "cstore", "assessments", "fhir"]
SR_CHANNELS: tuple[Channel, ...] = ("stow", "cstore", "assessments")
AE_TITLE = "TUMOUR_RESPONSE"
TIMEOUT = 30
_DIMSE_STATUS = re.compile(r"DIMSE Status\s*:\s*0x([0-9a-fA-F]{4})")
LESIONS = 2


@dataclass(frozen=True)
class Item:
    """One input: what is sent, and the document it must become."""

    uid: str
    body: bytes
    is_sr: bool
    lesions: int  # lesions of its report
    measurements: int  # measurements of its report, over all lesions


def sr_items(patient_prefix: str, count: int, dates: Iterable[str] = ("20240105",)) -> list[Item]:
    """*count* patients' SRs (two lesions) on each of *dates* (YYYYMMDD)."""
    sr = template(LESIONS)
    return [
        _sr_item(stamp(sr, f"{patient_prefix}-{index:04d}", day))
        for index in range(count)
        for day in dates
    ]


def timepoint_items(patient_id: str, dates: Iterable[str]) -> list[Item]:
    """One patient's SRs, one per date."""
    sr = template(LESIONS)
    return [_sr_item(stamp(sr, patient_id, day)) for day in dates]


def bundle_items(patient_prefix: str, count: int) -> list[Item]:
    """*count* patients' FHIR transaction Bundles (two target lesions), each with an
    identifier, which is the UID of the document it becomes."""
    items = []
    for index in range(count):
        patient_id = f"{patient_prefix}-{index:04d}"
        bundle = measurement_bundle(patient_id, "2024-01-05", [("T1", 30.0), ("T2", 20.0)])
        bundle["identifier"] = {"system": "urn:test:bundle", "value": patient_id}
        body = json.dumps(bundle).encode()
        report = fhir_reader.read_fhir(strict_json.loads(body), digest="unused").reports[0]
        items.append(_item(report, body, is_sr=False))
    return items


def _sr_item(data: bytes) -> Item:
    report = dicom_status.read_instance(data, patient_system="unused").inbound.report
    return _item(report, data, is_sr=True)


def _item(report: TimepointReport, body: bytes, is_sr: bool) -> Item:
    count = sum(len(observation.measurements) for observation in report.lesions)
    return Item(report.source.uid, body, is_sr, len(report.lesions), count)


# -- channels: each returns the status it got, None when it got no answer ---------------


def send(channel: Channel, item: Item, base: str, dimse_port: int = 0) -> int | None:
    """Deliver *item* by *channel*: the HTTP status, or the C-STORE status; None when
    no answer came (the server is gone)."""
    if channel == "cstore":
        return cstore(dimse_port, item.body)
    try:
        return post(channel, item, base).status_code
    except httpx.TransportError:
        return None


def post(channel: Channel, item: Item, base: str) -> httpx.Response:
    """Deliver *item* over HTTP by *channel* (not ``cstore``)."""
    path, content, media_type = {
        "stow": ("/dicomweb/studies", stow_request(item), STOW_CONTENT_TYPE),
        "assessments": ("/assessments", item.body, "application/dicom"),
        "fhir": ("/fhir", item.body, "application/fhir+json"),
    }[channel]
    headers = {"Content-Type": media_type}
    return httpx.post(base + path, content=content, headers=headers, timeout=TIMEOUT)


def stow_request(item: Item) -> bytes:
    """The STOW-RS body of *item* (an SR), for ``Content-Type`` :data:`STOW_CONTENT_TYPE`."""
    return stow_body([item.body])


def cstore(port: int, data: bytes) -> int | None:
    """One C-STORE by DCMTK ``storescu`` (a real SCU) in its own association; the status
    it printed, None when there was none (no association, the server is gone)."""
    with tempfile.NamedTemporaryFile(suffix=".dcm") as file:
        file.write(data)
        file.flush()
        limits = [option for flag in ("-to", "-ta", "-td") for option in (flag, str(TIMEOUT))]
        result = subprocess.run(
            ["storescu", "-d", *limits, "-aec", AE_TITLE, "-R", "127.0.0.1", str(port), file.name],
            capture_output=True,
            text=True,
            timeout=2 * TIMEOUT,
            check=False,
        )
    found = _DIMSE_STATUS.search(result.stdout + result.stderr)
    return int(found.group(1), 16) if found else None


def acknowledged(status: int | None, channel: Channel) -> bool:
    """A success answer: 2xx over HTTP, 0x0000 over DIMSE."""
    if status is None:
        return False
    return status == dicom_status.SUCCESS if channel == "cstore" else 200 <= status < 300


# -- the verifier ---------------------------------------------------------------------


def stored_documents(engine: Engine) -> dict[str, int]:
    """Per stored document UID, how many rows carry it."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(document.c.uid, sa.func.count()).group_by(document.c.uid)
        ).all()
    return {str(uid): int(count) for uid, count in rows}


def incomplete_documents(engine: Engine, items: Iterable[Item]) -> list[str]:
    """The stored documents among *items* that lack lesions or measurements (in their
    ``lesions`` column, where a document keeps them)."""
    found = stored_counts(engine)
    return [
        item.uid
        for item in items
        if item.uid in found and found[item.uid] != (item.lesions, item.measurements)
    ]


def stored_counts(engine: Engine) -> dict[str, tuple[int, int]]:
    """Each stored document's lesions and measurements, by its uid."""
    with engine.connect() as connection:
        stored = connection.execute(sa.select(document.c.uid, document.c.lesions)).all()
    return {uid: _counts(lesions) for uid, lesions in stored}


def _counts(lesions: bytes | None) -> tuple[int, int]:
    """Lesions and measurements of a document's lesions column (none when NULL)."""
    decoded = lesion_codec.decode(lesions) if lesions is not None else ()
    return len(decoded), sum(len(found.measurements) for found in decoded)


def diagnostic_reports(engine: Engine) -> list[StoredResource]:
    """The DiagnosticReports the FHIR face finds (a search of each type): one per
    assessed timepoint, whether kept in its result row or as a row of the index."""
    with open_store(engine) as store:
        return store.search_resources("DiagnosticReport")


def data_rows(engine: Engine) -> int:
    """Rows of every data table (not the audit trail, which records refusals too): 0 on a
    database no ingest was written to."""
    audit_trail = {audit_event.name, audit_patient.name}
    with engine.connect() as connection:
        return sum(
            connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            for table in metadata.sorted_tables
            if table.name not in audit_trail
        )


def orphans(engine: Engine) -> int:
    """Lesions without their document and measurements without their lesion."""
    with engine.connect() as connection:
        lost_lesions = sa.select(sa.func.count()).where(
            lesion.c.document_id.not_in(sa.select(document.c.id))
        )
        lost_measurements = sa.select(sa.func.count()).where(
            measurement.c.lesion_id.not_in(sa.select(lesion.c.id))
        )
        found: int = connection.execute(lost_lesions).scalar_one()
        return found + connection.execute(lost_measurements).scalar_one()
