"""The push of each new assessment SR to a configured PACS (issue 4; README "Push to a
PACS"): through the app, from every intake route, to a real STOW-RS server and a real
pynetdicom C-STORE SCP on loopback. The push never sits on the request's path."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydicom.dataset import Dataset
from pydicom.uid import EnhancedSRStorage

from service.adapters import pacs_push, sr_context
from service.config import Settings
from service.entrypoints.api.app import create_app
from tests.pacs_receivers import (
    StowReceiver,
    closed_port,
    cstore_receiver,
    stow_receiver,
    wait_for,
)
from tests.sr_factory import LesionSpec, make_sr, sr_bytes

pytestmark = pytest.mark.anyio

DICOM = {"Content-Type": "application/dicom"}


def _settings(database_url: str, **push: Any) -> Settings:
    return Settings(_env_file=None, database_url=database_url, **push)  # type: ignore[call-arg]


@asynccontextmanager
async def _serving(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield app, client


def _sr(patient_id: str, day: str, long_axis_mm: float) -> bytes:
    return sr_bytes(
        make_sr(patient_id=patient_id, study_date=day, lesions=[LesionSpec("T1", long_axis_mm)])
    )


def _codes(items: Any) -> Iterator[tuple[str, str]]:
    """(CodeValue, CodingSchemeDesignator) of every coded concept of a content tree."""
    for item in items:
        for keyword in ("ConceptNameCodeSequence", "ConceptCodeSequence"):
            for code in item.get(keyword, []):
                yield str(code.CodeValue), str(code.CodingSchemeDesignator)
        yield from _codes(item.get("ContentSequence", []))


def _assert_ours(sr: Dataset, patient_id: str, study_date: str, response: str | None) -> None:
    """The writer's SR: Enhanced SR, our device observer, the evidence's patient and
    study, the sum of diameters, and after baseline the current response in 99TR."""
    assert sr.SOPClassUID == EnhancedSRStorage
    assert (sr.PatientID, sr.StudyDate) == (patient_id, study_date)
    assert sr_context.ASSESSMENT_DEVICE_UID in {
        str(item.get("UID", "")) for item in sr.ContentSequence
    }
    assert "99TR" in {s.CodingSchemeDesignator for s in sr.CodingSchemeIdentificationSequence}
    codes = set(_codes(sr.ContentSequence))
    assert ("126011", "DCM") in codes  # Derived Imaging Measurements
    if response is not None:
        assert ("112048", "DCM") in codes and (response, "99TR") in codes


async def _post(client: httpx.AsyncClient, body: bytes) -> float:
    """POST /assessments; the seconds it took (it must succeed)."""
    started = time.monotonic()
    response = await client.post("/assessments", content=body, headers=DICOM)
    assert response.status_code == 200, response.text
    return time.monotonic() - started


def _push_threads() -> int:
    return sum(thread.name == "pacs-push" for thread in threading.enumerate())


def _received(receiver: StowReceiver, count: int) -> list[Dataset]:
    wait_for(lambda: len(receiver.received) >= count, f"{count} pushed SRs")
    return receiver.received


async def test_each_new_result_is_pushed_by_stow_after_the_answer(database_url: str) -> None:
    with stow_receiver() as receiver:
        receiver.gate.clear()  # the PACS holds its answer
        async with _serving(_settings(database_url, push_stow_url=receiver.url)) as (_app, client):
            await _post(client, _sr("PUSH-A", "20240105", 30))  # answered while the PACS holds
            wait_for(receiver.arrived.is_set, "the push to reach the PACS")
            assert receiver.received == []
            receiver.gate.set()
            (baseline,) = _received(receiver, 1)
            _assert_ours(baseline, "PUSH-A", "20240105", None)
            follow_up = _sr("PUSH-A", "20240301", 20)
            await _post(client, follow_up)
            _assert_ours(_received(receiver, 2)[1], "PUSH-A", "20240301", "PR")
            await _post(client, follow_up)  # the same again: no new result
            await _post(client, _sr("PUSH-B", "20240105", 40))  # pushed after (one thread, FIFO)
            assert [sr.PatientID for sr in _received(receiver, 3)] == ["PUSH-A", "PUSH-A", "PUSH-B"]
            time.sleep(0.2)
            assert len(receiver.received) == 3


async def test_pushed_by_cstore_with_the_calling_ae_title(database_url: str) -> None:
    with cstore_receiver() as receiver:
        settings = _settings(database_url, push_dimse=receiver.address, push_calling_ae="TR_PUSHER")
        async with _serving(settings) as (_app, client):
            await _post(client, _sr("PUSH-C", "20240105", 30))
            wait_for(lambda: receiver.received, "the C-STORE push")
    (sr,) = receiver.received
    _assert_ours(sr, "PUSH-C", "20240105", None)
    assert receiver.calling == ["TR_PUSHER"]


async def test_stow_and_cstore_intake_are_pushed_too(database_url: str) -> None:
    port = closed_port()
    with stow_receiver() as receiver:
        settings = _settings(database_url, push_stow_url=receiver.url, dimse_port=port)
        async with _serving(settings) as (_app, client):
            boundary = "push-test"
            response = await client.post(
                "/dicomweb/studies",
                content=pacs_push.multipart_body([_sr("PUSH-S", "20240105", 30)], boundary),
                headers={
                    "Content-Type": f'multipart/related; type="application/dicom"; '
                    f"boundary={boundary}"
                },
            )
            assert response.status_code == 200, response.text
            _assert_ours(_received(receiver, 1)[0], "PUSH-S", "20240105", None)
            target = pacs_push.DimseTarget(settings.dimse_ae_title, "127.0.0.1", port)
            pacs_push.cstore(target, "MODALITY", _sr("PUSH-S", "20240301", 20), timeout=10)
            _assert_ours(_received(receiver, 2)[1], "PUSH-S", "20240301", "PR")


async def test_no_push_without_a_destination(database_url: str) -> None:
    before = _push_threads()
    async with _serving(_settings(database_url)) as (app, client):
        await _post(client, _sr("PUSH-N", "20240105", 30))
        assert app.state.push_worker is None
        assert _push_threads() == before


async def test_a_full_queue_drops_with_a_warning_and_never_blocks(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with stow_receiver() as receiver:
        receiver.gate.clear()
        settings = _settings(database_url, push_stow_url=receiver.url, push_queue_size=1)
        async with _serving(settings) as (app, client):
            with caplog.at_level(logging.WARNING):
                await _post(client, _sr("FULL-1", "20240105", 30))  # the one being sent
                wait_for(receiver.arrived.is_set, "the first push")
                await _post(client, _sr("FULL-2", "20240105", 30))  # queued
                elapsed = await _post(client, _sr("FULL-3", "20240105", 30))  # dropped
            assert elapsed < settings.push_timeout / 3
            assert app.state.push_worker.dropped == 1
            assert "PACS push queue full (1 jobs)" in caplog.text
            assert "FULL-3" not in caplog.text
            receiver.gate.set()
            assert [sr.PatientID for sr in _received(receiver, 2)] == ["FULL-1", "FULL-2"]


async def test_an_unreachable_pacs_is_retried_then_logged(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://127.0.0.1:{closed_port()}/dicom-web"
    settings = _settings(database_url, push_stow_url=url, push_timeout=2)
    async with _serving(settings) as (_app, client):
        with caplog.at_level(logging.INFO):
            elapsed = await _post(client, _sr("PUSH-U", "20240105", 30))
            wait_for(lambda: "not pushed" in caplog.text, "the push error")
    assert elapsed < 1  # three attempts take 3 s of backoff alone
    (error,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert f"to STOW-RS {url} after 3 attempts" in error and "PUSH-U" not in error
