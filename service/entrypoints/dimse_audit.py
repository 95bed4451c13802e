"""The audit trail of the DIMSE listener: one AuditEvent per association, rejected and
aborted ones included (issue 6; :mod:`service.adapters.audit`).

The event is DICOM "DICOM Instances Transferred" (DCM 110104, PS3.16 CID 400) for every
association: action ``C`` once an instance was offered, else ``E`` (C-ECHO only, or
refused before any); the calling AE title and address are the requestor; every SOP
Instance UID offered, stored or refused, is an entity. A stored instance saves the event
in its own transaction (:func:`storing`); the event is saved again when the association
ends (released, aborted, rejected or its connection closed, whichever comes first).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pynetdicom import evt
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.events import Event
from sqlalchemy import Engine

from service.adapters import audit

_trails: dict[int, audit.Trail] = {}  # by id() of the pynetdicom Association
_lock = threading.Lock()


def handlers(engine: Engine, tenant: str) -> list[tuple[Any, Callable[..., None], list[Any]]]:
    """The pynetdicom event handlers that keep the trail of each association, an event of
    *tenant* (DIMSE has no token: the configured tenant)."""
    return [
        (evt.EVT_CONN_OPEN, _opened, [tenant]),
        (evt.EVT_REJECTED, _ended, [engine, "association rejected"]),
        (evt.EVT_ABORTED, _ended, [engine, "association aborted"]),
        (evt.EVT_RELEASED, _ended, [engine, None]),
        (evt.EVT_CONN_CLOSE, _ended, [engine, None]),
    ]


@contextmanager
def storing(event: Event, tenant: str) -> Iterator[audit.Trail]:
    """The trail of *event*'s association, current while one C-STORE is served."""
    request = event.request
    assert isinstance(request, C_STORE)  # bound to EVT_C_STORE only
    trail = _trail(event, tenant)
    trail.action = "C"
    with audit.recording(trail):
        audit.note_instance(str(request.AffectedSOPInstanceUID))
        yield trail


def _trail(event: Event, tenant: str) -> audit.Trail:
    """The trail of *event*'s association, begun now if need be."""
    with _lock:
        found = _trails.get(id(event.assoc))
        if found is not None:
            return found
        requestor = event.assoc.requestor
        trail = audit.Trail(
            type=audit.INSTANCES_TRANSFERRED,
            action="E",
            address=None,  # the connection event gives it
            tenant=tenant,
            refresh=lambda trail: setattr(trail, "requestor", requestor.ae_title.strip() or None),
        )
        _trails[id(event.assoc)] = trail
        return trail


def _opened(event: Event, tenant: str) -> None:
    _trail(event, tenant).address = event.address[0]  # type: ignore[attr-defined]  # EVT_CONN_OPEN


def _ended(event: Event, engine: Engine, failure: str | None) -> None:
    with _lock:
        trail = _trails.pop(id(event.assoc), None)
    if trail is None:  # saved at an earlier end event already
        return
    if failure is not None:
        trail.fail(audit.Outcome.MINOR_FAILURE, failure)
    audit.save_alone(trail, engine)
