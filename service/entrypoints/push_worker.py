"""Push each new assessment SR to the configured PACS, in the background (issue 4 write-back;
the SR is the one of contract section 2, ``Accept: application/dicom``).

An entrypoint collects the timepoints whose stored result changed
(:data:`services.Change`, from ``services.assess_reports(changed=...)``) with
:func:`collect`; once its transaction committed, they become jobs in a bounded queue.
One daemon thread takes them in order, builds each SR in its own transaction
(:func:`services.assessment_sr`) and sends it to every destination
(:mod:`service.adapters.pacs_push`), up to :data:`ATTEMPTS` times with exponential
backoff. Ingest never waits on a PACS: a full queue drops the job with a WARNING and
counts it. Logs name SOP Instance UIDs only, never the patient (reliability.md).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import Final

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from service import services
from service.adapters import pacs_push
from service.adapters.db import open_store
from service.config import Settings
from service.domain.errors import DomainError, UnsupportedInput
from service.domain.model import AssessmentParameters, ClinicalSetting, PatientIdentity

logger = logging.getLogger(__name__)

ATTEMPTS: Final = 3
BACKOFF_SECONDS: Final = 1.0  # before the second attempt; doubled before each next one


@dataclass(frozen=True, slots=True)
class Job:
    """One timepoint to write as SR and push, with the assessment options it was stored with."""

    tenant: str
    patient: PatientIdentity
    day: date
    criteria: tuple[str, ...]
    params: AssessmentParameters
    setting: ClinicalSetting | None


@dataclass(frozen=True, slots=True)
class Destination:
    """A PACS: its name in logs and the function sending one instance there."""

    name: str
    send: Callable[[bytes], None]


class PushWorker:
    """A bounded queue of :class:`Job` and the one thread sending them."""

    def __init__(
        self,
        engine: Engine,
        destinations: Sequence[Destination],
        *,
        capacity: int,
        backoff: float = BACKOFF_SECONDS,
    ) -> None:
        self._engine = engine
        self._destinations = tuple(destinations)
        self._backoff = backoff
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=capacity)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="pacs-push", daemon=True)
        self.dropped = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Stop after the SR being sent (at most *timeout* seconds); queued jobs are lost."""
        self._stopping.set()
        with suppress(queue.Full):  # then the thread sees _stopping after its current job
            self._queue.put_nowait(None)
        self._thread.join(timeout)

    def submit(
        self,
        changed: Sequence[services.Change],
        criteria: Sequence[str],
        params: AssessmentParameters,
        setting: ClinicalSetting | None,
    ) -> None:
        """Queue one job per changed timepoint, never waiting: a full queue drops it."""
        for tenant, patient, day in changed:
            try:
                self._queue.put_nowait(Job(tenant, patient, day, tuple(criteria), params, setting))
            except queue.Full:
                with self._lock:
                    self.dropped += 1
                    dropped = self.dropped
                logger.warning(
                    "PACS push queue full (%d jobs): an assessment SR is not pushed "
                    "(%d dropped since start)",
                    self._queue.maxsize,
                    dropped,
                )

    def _run(self) -> None:
        while not self._stopping.is_set():
            job = self._queue.get()
            if job is None:
                return
            try:
                self._push(job)
            except (DomainError, SQLAlchemyError) as exc:
                logger.error("PACS push: the SR could not be built (%s)", type(exc).__name__)

    def _push(self, job: Job) -> None:
        try:
            with open_store(self._engine) as store:
                sr = services.assessment_sr(
                    store,
                    job.patient,
                    job.day,
                    job.criteria,
                    job.params,
                    job.setting,
                    tenant=job.tenant,
                )
        except UnsupportedInput:
            logger.info("PACS push: a timepoint without DICOM context or lesion is not pushed")
            return
        uid = pacs_push.instance_uid(sr)
        for destination in self._destinations:
            self._send(destination, sr, uid)

    def _send(self, destination: Destination, sr: bytes, uid: str) -> None:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                destination.send(sr)
            except pacs_push.PushFailed as exc:
                if attempt == ATTEMPTS:
                    logger.error(
                        "SR %s not pushed to %s after %d attempts: %s",
                        uid,
                        destination.name,
                        attempt,
                        exc,
                    )
                elif self._stopping.wait(self._backoff * 2 ** (attempt - 1)):
                    return
            else:
                logger.info("SR %s pushed to %s", uid, destination.name)
                return


def from_settings(settings: Settings, engine: Engine) -> PushWorker | None:
    """The worker for the configured destinations (``TR_PUSH_*``); None when none is."""
    destinations = []
    if settings.push_stow_url:
        send = partial(pacs_push.stow, settings.push_stow_url, timeout=settings.push_timeout)
        destinations.append(Destination(f"STOW-RS {settings.push_stow_url}", send))
    if settings.push_dimse:
        target = pacs_push.DimseTarget.parse(settings.push_dimse)
        calling_ae = settings.push_calling_ae or settings.dimse_ae_title
        send = partial(pacs_push.cstore, target, calling_ae, timeout=settings.push_timeout)
        destinations.append(Destination(f"C-STORE {settings.push_dimse}", send))
    if not destinations:
        return None
    return PushWorker(engine, destinations, capacity=settings.push_queue_size)


@contextmanager
def collect(
    worker: PushWorker | None,
    criteria: Sequence[str] = (),
    params: AssessmentParameters | None = None,
    setting: ClinicalSetting | None = None,
) -> Iterator[list[services.Change]]:
    """A list for ``services.assess_reports(changed=...)``; its timepoints are submitted
    to *worker* when the block ends without error. Open the store inside the block, so
    its transaction has committed by then."""
    changed: list[services.Change] = []
    yield changed
    if worker is not None:
        worker.submit(changed, criteria, params or AssessmentParameters(), setting)
