"""The DIMSE listener: C-ECHO and C-STORE SCP for SR instances (PS3.4 Annex A and B;
interop.md 4.2; contract sections 1 and 2).

Started by the app's lifespan in pynetdicom's threaded server when
``TR_DIMSE_PORT`` is not 0, and shut down with it (architecture.md 2.7). Presentation
contexts are offered for Verification and for the Basic Text, Enhanced, Comprehensive,
Comprehensive 3D and Extensible SR Storage SOP classes; any other SOP class is refused at
association. Each C-STORE goes through the same steps as a STOW-RS part
(:mod:`service.entrypoints.dicom_status`) and answers ``0x0000`` only after the report
is committed and assessed; a re-delivery of the same instance is a success again.

A calling AE title not in ``TR_DIMSE_ALLOWED_CALLING_AES`` (when set) gets an
A-ASSOCIATE-RJ: rejected-permanent, service user, calling AE title not recognized
(reliability.md section 4). We announce ``TR_DIMSE_MAX_PDU_BYTES`` (64 KiB) as our
maximum PDU length, and every association is read through :mod:`.dimse_guard`, which
aborts it (A-ABORT) when a PDU over ``TR_DIMSE_ABORT_PDU_BYTES`` (1 MiB) or a data set
over ``TR_DIMSE_MAX_DATASET_BYTES`` (64 MiB) arrives (reliability.md sections 4 and 5).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from typing import Final

from pydicom.dataset import Dataset
from pydicom.uid import (
    BasicTextSRStorage,
    Comprehensive3DSRStorage,
    ComprehensiveSRStorage,
    EnhancedSRStorage,
    ExtensibleSRStorage,
)
from pynetdicom import AE, evt
from pynetdicom.events import Event
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import ThreadedAssociationServer
from sqlalchemy import Engine

from service.adapters import audit
from service.adapters.db import transaction
from service.config import Settings
from service.entrypoints import dicom_status, dimse_audit, dimse_guard, logs, metrics, sr_instance
from service.entrypoints.push_worker import PushWorker

logger = logging.getLogger(__name__)

SR_STORAGE: Final = (
    BasicTextSRStorage,
    EnhancedSRStorage,
    ComprehensiveSRStorage,
    Comprehensive3DSRStorage,
    ExtensibleSRStorage,
)
_ERROR_COMMENT_CHARS: Final = 64  # LO
# Reads one PS3.10 instance, or raises sr_instance.InstanceRefused.
ReadInstance = Callable[[bytes], dicom_status.Instance]


def handle_store(
    event: Event,
    engine: Engine,
    settings: Settings,
    pusher: PushWorker | None = None,
    read: ReadInstance | None = None,
) -> Dataset | int:
    """EVT_C_STORE: one SR instance in, one C-STORE status out, noted in the
    association's audit event (committed with the report when it is stored). The
    instance is read by *read* (the server's SR reader), else in this thread."""
    with dimse_audit.storing(event, settings.tenant) as trail:
        try:
            with metrics.ingest("c-store") as tally:
                data = event.encoded_dataset()
                if len(data) > settings.max_dicom_body_bytes:
                    raise sr_instance.InstanceRefused(
                        sr_instance.Condition.LIMIT,
                        f"data set over {settings.max_dicom_body_bytes} bytes",
                    )
                instance = (
                    read(data)
                    if read is not None
                    else dicom_status.read_instance(
                        data,
                        patient_system=settings.patient_system,
                        max_inflated_bytes=settings.sr_max_inflated_bytes,
                    )
                )
                # DIMSE has no token: every C-STORE goes to the configured tenant (README)
                with dicom_status.committing(
                    instance, _root_url(settings), pusher, tenant=settings.tenant, tally=tally
                ) as attempt:
                    transaction(engine, attempt)
        except sr_instance.InstanceRefused as refused:
            _log_store(refused.status.cstore, refused.condition.name)
            trail.fail(audit.Outcome.MINOR_FAILURE, f"instance refused ({refused.condition.name})")
            return _status(refused.status.cstore, str(refused))
        except Exception:
            logger.exception("C-STORE failed")
            trail.fail(audit.Outcome.SERIOUS_FAILURE, "instance processing failure")
            status = sr_instance.STATUSES[sr_instance.Condition.PROCESSING].cstore
            _log_store(status, sr_instance.Condition.PROCESSING.name)
            return _status(status, "processing failure")
        _log_store(dicom_status.SUCCESS)
        return dicom_status.SUCCESS


def _log_store(status: int, condition: str | None = None) -> None:
    """One line per C-STORE: its status and the condition's name, never the message, which
    may quote a value of the data set (reliability.md 2.9)."""
    logger.info("C-STORE", extra={"dimse_status": f"0x{status:04X}", "condition": condition})


def _association_started(event: Event) -> None:
    """Bind an association id and the calling AE title to the association thread's lines."""
    request = event.assoc.requestor.primitive  # the A-ASSOCIATE-RQ, set before EVT_REQUESTED
    calling_ae = request.calling_ae_title if request is not None else ""
    logs.bind(association_id=uuid.uuid4().hex[:16], calling_ae=calling_ae)


def _association_outcome(outcome: str) -> Callable[[Event], None]:
    def handle(event: Event) -> None:
        metrics.DIMSE_ASSOCIATIONS.labels(outcome).inc()
        logger.info("association %s", outcome)

    return handle


ASSOCIATION_HANDLERS: Final = [
    (evt.EVT_REQUESTED, _association_started),
    *(
        (event, _association_outcome(outcome))
        for event, outcome in (
            (evt.EVT_ACCEPTED, "accepted"),
            (evt.EVT_REJECTED, "rejected"),
            (evt.EVT_RELEASED, "released"),
            (evt.EVT_ABORTED, "aborted"),
        )
    ),
]


def start(
    settings: Settings,
    engine: Engine,
    pusher: PushWorker | None = None,
    read: ReadInstance | None = None,
) -> ThreadedAssociationServer:
    """Start the SCP in pynetdicom's own threads; the caller shuts it down. Each stored
    SR's new results are submitted to *pusher* (PACS push), if any; each instance is
    read by *read* (:func:`.read_process.blocking`: the server's SR reader), else in
    its association's thread."""
    ae = AE(ae_title=settings.dimse_ae_title)
    ae.acse_timeout = settings.dimse_acse_timeout
    ae.dimse_timeout = settings.dimse_dimse_timeout
    ae.network_timeout = settings.dimse_network_timeout
    ae.maximum_associations = settings.dimse_max_associations
    ae.maximum_pdu_size = settings.dimse_max_pdu_bytes
    ae.require_calling_aet = allowed_calling_aes(settings)
    if not ae.require_calling_aet:
        logger.warning(
            "DIMSE SCP accepts any calling AE title: set TR_DIMSE_ALLOWED_CALLING_AES"
            " to the AE titles of the PACS that may send"
        )
    ae.add_supported_context(Verification)
    for sop_class in SR_STORAGE:
        ae.add_supported_context(sop_class)
    # AE.start_server(block=False), with pynetdicom's request handler behind the guard
    server = ae.make_server(
        (settings.dimse_host, settings.dimse_port),
        evt_handlers=[
            (evt.EVT_C_STORE, handle_store, [engine, settings, pusher, read]),
            *dimse_audit.handlers(engine, settings.tenant),
            *ASSOCIATION_HANDLERS,
        ],
        server_class=ThreadedAssociationServer,
        request_handler=dimse_guard.guarded_request_handler(
            settings.dimse_abort_pdu_bytes, settings.dimse_max_dataset_bytes
        ),
    )
    ae._servers.append(server)  # as start_server does: the server's shutdown() removes it
    threading.Thread(target=server.serve_forever, name="DIMSE SCP", daemon=True).start()
    logger.info(
        "DIMSE SCP %s listening on %s:%d",
        settings.dimse_ae_title,
        settings.dimse_host,
        server.server_address[1],
    )
    return server


def allowed_calling_aes(settings: Settings) -> list[str]:
    """The calling AE titles of ``TR_DIMSE_ALLOWED_CALLING_AES``; empty: any (issue 6)."""
    return [
        title.strip() for title in settings.dimse_allowed_calling_aes.split(",") if title.strip()
    ]


def _root_url(settings: Settings) -> str:
    """No request to take it from: configured, else the HTTP address of this process."""
    return settings.public_base_url or f"http://{settings.http_host}:{settings.http_port}"


def _status(code: int, comment: str) -> Dataset:
    status = Dataset()
    status.Status = code
    status.ErrorComment = comment.replace("\\", "/")[:_ERROR_COMMENT_CHARS]
    return status
