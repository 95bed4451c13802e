"""The audit trail: one FHIR R4 AuditEvent, IHE BALP style, per HTTP request and per DIMSE
association, rejections included (issue 6; reliability.md sections 3 "Audit trail
completeness" and 7; interop.md, the ATNA/BALP and DICOM audit rows).

A :class:`Trail` gathers what one request or association did: the patients and objects
it touched (the store notes them with :func:`note_patient`, :func:`note_document` and
:func:`note_resource`) and its outcome. While it runs it is the *current* trail
(:func:`recording`), and the unit of work (:func:`service.adapters.db.open_store`) saves
it in the transaction of the data rows: a committed write has its audit row, a
rolled-back one has none. The entrypoint saves it again, in a transaction of its own,
once the outcome is known; a save that would store what is already stored does nothing.

Audit rows name patients: they stay in the (PHI-protected) database and are never logged.
"""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import IntEnum
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from service.adapters import db_schema as schema
from service.adapters.db_schema import DEFAULT_TENANT
from service.adapters.fhir_writer import dumps, patient_id
from service.adapters.prepared import Prepared
from service.domain.model import PatientIdentity, SourceDocument

logger = logging.getLogger(__name__)

Resource = dict[str, Any]

DCM: Final = "http://dicom.nema.org/resources/ontology/DCM"
EVENT_TYPE: Final = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL_INTERACTION: Final = "http://hl7.org/fhir/restful-interaction"
_ENTITY_TYPE: Final = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
_OBJECT_ROLE: Final = "http://terminology.hl7.org/CodeSystem/object-role"
_SOURCE_TYPE: Final = "http://terminology.hl7.org/CodeSystem/security-source-type"
OBSERVER: Final = "tumour-response"


@dataclass(frozen=True, slots=True)
class Coding:
    system: str
    code: str
    display: str

    def json(self) -> Resource:
        return {"system": self.system, "code": self.code, "display": self.display}

    @property
    def token(self) -> str:
        return f"{self.system}|{self.code}"


# BALP: RESTful operations (audit-event-type#rest); DICOM PS3.16 CID 400 and 402.
REST: Final = Coding(EVENT_TYPE, "rest", "RESTful Operation")
INSTANCES_TRANSFERRED: Final = Coding(DCM, "110104", "DICOM Instances Transferred")
_SOURCE_ROLE: Final = Coding(DCM, "110153", "Source Role ID")
_DESTINATION_ROLE: Final = Coding(DCM, "110152", "Destination Role ID")
_PERSON: Final = Coding(_ENTITY_TYPE, "1", "Person")
_SYSTEM_OBJECT: Final = Coding(_ENTITY_TYPE, "2", "System Object")
_PATIENT_ROLE: Final = Coding(_OBJECT_ROLE, "1", "Patient")
_REPORT_ROLE: Final = Coding(_OBJECT_ROLE, "3", "Report")
_RESOURCE_ROLE: Final = Coding(_OBJECT_ROLE, "4", "Domain Resource")
_QUERY_ROLE: Final = Coding(_OBJECT_ROLE, "24", "Query")
_APPLICATION_SERVER: Final = Coding(_SOURCE_TYPE, "4", "Application Server")

# Trail.save's statements (one audit event per request: built once, prepared.py).
_EVENT, _EVENT_PATIENT = schema.audit_event, schema.audit_patient
_INSERT_EVENT: Final = Prepared(sa.insert(_EVENT).returning(_EVENT.c.id))
_UPDATE_EVENT: Final = Prepared(sa.update(_EVENT).where(_EVENT.c.id == sa.bindparam("row_id")))
_FORGET_PATIENTS: Final = Prepared(
    sa.delete(_EVENT_PATIENT).where(_EVENT_PATIENT.c.audit_event_id == sa.bindparam("row_id"))
)
_INSERT_PATIENTS: Final = Prepared(sa.insert(_EVENT_PATIENT))


def interaction(code: str) -> Coding:
    """A FHIR restful-interaction subtype (read, create, search-type, ...)."""
    return Coding(RESTFUL_INTERACTION, code, code)


class Outcome(IntEnum):
    """AuditEvent.outcome (FHIR R4 audit-event-outcome)."""

    SUCCESS = 0
    MINOR_FAILURE = 4  # the request was refused (HTTP 4xx, DIMSE refusal)
    SERIOUS_FAILURE = 8  # the service failed (HTTP 5xx, DIMSE processing failure)
    MAJOR_FAILURE = 12


@dataclass(slots=True)
class Trail:
    """The AuditEvent of one HTTP request or DIMSE association, built while it runs."""

    type: Coding
    action: str  # C R U D E
    address: str | None  # the caller's network address
    subtype: Coding | None = None
    requestor: str | None = None  # client id, subject or calling AE title; None: anonymous
    tenant: str = DEFAULT_TENANT
    outcome: Outcome = Outcome.SUCCESS
    outcome_desc: str | None = None
    query: str | None = None  # the search parameters of a query
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    recorded: datetime = field(default_factory=lambda: datetime.now(UTC))
    patients: dict[str, PatientIdentity] = field(default_factory=dict)
    objects: dict[str, Resource] = field(default_factory=dict)
    refresh: Callable[[Trail], None] | None = None  # completes it before each save
    _row_id: int | None = None
    _saved: bytes | None = None
    _saved_state: tuple[object, ...] | None = None  # _state() of what _saved was built from

    def fail(self, outcome: Outcome, description: str) -> None:
        """Record a failure; the worst one stays, with every description."""
        self.outcome = max(self.outcome, outcome)
        self.outcome_desc = "; ".join(filter(None, (self.outcome_desc, description)))

    def resource(self) -> Resource:
        """The FHIR R4 AuditEvent."""
        event: Resource = {
            "resourceType": "AuditEvent",
            "id": self.event_id,
            "type": self.type.json(),
            **({"subtype": [self.subtype.json()]} if self.subtype else {}),
            "action": self.action,
            "recorded": self.recorded.isoformat().replace("+00:00", "Z"),
            "outcome": str(int(self.outcome)),
            **({"outcomeDesc": self.outcome_desc} if self.outcome_desc else {}),
            "agent": [self._client(), self._server()],
            "source": {
                "observer": {"display": OBSERVER},
                "type": [_APPLICATION_SERVER.json()],
            },
        }
        entities = [_patient_entity(key, patient) for key, patient in self.patients.items()]
        entities += self.objects.values()
        if self.query is not None:
            query = base64.b64encode(self.query.encode()).decode()
            entities.append(_entity(None, _SYSTEM_OBJECT, _QUERY_ROLE, query=query))
        if entities:
            event["entity"] = entities
        return event

    def _client(self) -> Resource:
        who = (
            {"identifier": {"value": self.requestor}}
            if self.requestor
            else {"display": "anonymous"}
        )
        agent: Resource = {"type": {"coding": [_SOURCE_ROLE.json()]}, "who": who, "requestor": True}
        if self.address:
            agent["network"] = {"address": self.address, "type": "2"}  # 2: IP address
        return agent

    def _server(self) -> Resource:
        return {
            "type": {"coding": [_DESTINATION_ROLE.json()]},
            "who": {"display": OBSERVER},
            "requestor": False,
        }

    def unsaved(self) -> bytes | None:
        """The event as it would be saved now, None when that is what is stored."""
        return self._pending()[1]

    def _pending(self) -> tuple[tuple[object, ...], bytes | None]:
        """:meth:`_state` after the refresh, and :meth:`unsaved`. The event is built and
        serialised only when its state changed since it was saved (most requests save
        it in their unit of work, then the entrypoint finds nothing new)."""
        if self.refresh is not None:
            self.refresh(self)
        state = self._state()
        if state == self._saved_state:
            return state, None
        body = dumps(self.resource())
        return state, None if body == self._saved else body

    def _state(self) -> tuple[object, ...]:
        """Everything :meth:`resource` reads. An entity, once noted, is never changed in
        place (the ``note_*`` functions only add), so comparing states compares the
        entities by identity, cheaply."""
        return (
            self.type,
            self.subtype,
            self.action,
            self.address,
            self.requestor,
            self.outcome,
            self.outcome_desc,
            self.query,
            self.event_id,
            self.recorded,
            tuple(self.patients.items()),
            tuple(self.objects.items()),
        )

    def save(self, connection: Connection) -> Callable[[], None]:
        """Insert or update this event's row in *connection*'s transaction; returns what
        to call once that transaction committed (until then the row may roll back)."""
        state, body = self._pending()
        if body is None:
            return _nothing
        row = {
            "tenant": self.tenant,
            "event_id": self.event_id,
            "recorded": self.recorded,
            "type": self.type.token,
            "subtype": None if self.subtype is None else self.subtype.token,
            "action": self.action,
            "outcome": int(self.outcome),
            "body": body,
        }
        row_id = self._row_id
        if row_id is None:
            (inserted,) = _INSERT_EVENT.rows(connection, row)
            row_id = inserted.id
        else:
            _UPDATE_EVENT.run(connection, {**row, "row_id": row_id})
            _FORGET_PATIENTS.run(connection, {"row_id": row_id})
        _INSERT_PATIENTS.many(
            connection, [{"audit_event_id": row_id, "patient": key} for key in self.patients]
        )

        def committed() -> None:
            self._row_id, self._saved, self._saved_state = row_id, body, state

        return committed


def _nothing() -> None:
    return None


def save_alone(trail: Trail, engine: Engine) -> None:
    """Save *trail* in a transaction of its own (no data row goes with it). Never raises:
    the answer stands, and the loss is logged (without the event: it names patients).
    An event stored as it is takes no transaction (nor the SQLite write lock)."""
    if trail.unsaved() is None:
        return
    try:
        with engine.begin() as connection:
            committed = trail.save(connection)
    except Exception as error:
        logger.error("audit event not stored (%s)", type(error).__name__)
        return
    committed()


def _entity(what: Resource | None, kind: Coding, role: Coding, **more: Any) -> Resource:
    found: Resource = {} if what is None else {"what": what}
    return {**found, "type": kind.json(), "role": role.json(), **more}


def _patient_entity(key: str, patient: PatientIdentity) -> Resource:
    what = {
        "reference": f"Patient/{key}",
        "identifier": {"system": patient.system, "value": patient.value},
    }
    return _entity(what, _PERSON, _PATIENT_ROLE)


# -- the current trail --------------------------------------------------------------------

_current: ContextVar[Trail | None] = ContextVar("audit_trail", default=None)


@contextmanager
def recording(trail: Trail) -> Iterator[Trail]:
    """Make *trail* the current one (seen by the store) for the duration."""
    token = _current.set(trail)
    try:
        yield trail
    finally:
        _current.reset(token)


def current() -> Trail | None:
    """The trail of the request or association being served, if any."""
    return _current.get()


def note_interaction(code: str) -> None:
    """The current request is the FHIR interaction *code* (e.g. ``batch``)."""
    trail = _current.get()
    if trail is not None:
        trail.subtype = interaction(code)


def note_patient(patient: PatientIdentity) -> None:
    """The current request touched *patient*'s records."""
    trail = _current.get()
    if trail is not None:
        trail.patients.setdefault(patient_id(patient), patient)


def note_document(source: SourceDocument) -> None:
    """The current request stored the document *source* (an SR instance, a FHIR input)."""
    if source.kind == "dicom-sr":
        note_instance(source.uid)
        return
    trail = _current.get()
    if trail is not None:
        what = {"identifier": {"value": source.uid}}
        trail.objects.setdefault(source.uid, _entity(what, _SYSTEM_OBJECT, _REPORT_ROLE))


def note_instance(sop_instance_uid: str) -> None:
    """The current request or association sent the DICOM instance *sop_instance_uid*."""
    trail = _current.get()
    if trail is not None:
        what = {"identifier": {"system": "urn:dicom:uid", "value": f"urn:oid:{sop_instance_uid}"}}
        trail.objects.setdefault(sop_instance_uid, _entity(what, _SYSTEM_OBJECT, _REPORT_ROLE))


def note_resource(resource_type: str, resource_id_: str) -> None:
    """The current request read the FHIR resource *resource_type*/*resource_id_*."""
    trail = _current.get()
    if trail is not None:
        reference = f"{resource_type}/{resource_id_}"
        what = {"reference": reference}
        trail.objects.setdefault(reference, _entity(what, _SYSTEM_OBJECT, _RESOURCE_ROLE))


# -- search (GET /fhir/AuditEvent) --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Query:
    """What ``GET /fhir/AuditEvent`` may ask; every given criterion must hold."""

    tenant: str = DEFAULT_TENANT
    since: date | None = None  # recorded on or after this day (UTC)
    until: date | None = None  # recorded on or before this day (UTC)
    patient: str | None = None  # FHIR Patient id
    types: tuple[str, ...] = ()  # tokens: "code" or "system|code", any of them
    subtypes: tuple[str, ...] = ()
    outcomes: tuple[int, ...] = ()
    count: int = 100


def search(engine: Engine, query: Query) -> tuple[int, list[bytes]]:
    """The number of matching events and the newest *query.count* of them, newest first."""
    event = schema.audit_event
    where: list[sa.ColumnElement[bool]] = [event.c.tenant == query.tenant]
    if query.since is not None:
        where.append(event.c.recorded >= datetime.combine(query.since, time(), UTC))
    if query.until is not None:
        after = datetime.combine(query.until + timedelta(days=1), time(), UTC)
        where.append(event.c.recorded < after)
    if query.patient is not None:
        patients = schema.audit_patient
        named = sa.select(patients.c.audit_event_id).where(patients.c.patient == query.patient)
        where.append(event.c.id.in_(named))
    if query.types:
        where.append(_token_match(event.c.type, query.types))
    if query.subtypes:
        where.append(_token_match(event.c.subtype, query.subtypes))
    if query.outcomes:
        where.append(event.c.outcome.in_(query.outcomes))
    with engine.connect() as connection:
        total = connection.execute(
            sa.select(sa.func.count()).select_from(event).where(*where)
        ).scalar_one()
        rows = connection.execute(
            sa.select(event.c.body)
            .where(*where)
            .order_by(event.c.recorded.desc(), event.c.id.desc())
            .limit(query.count)
        ).scalars()
        return total, [bytes(body) for body in rows]


def _token_match(column: sa.ColumnElement[Any], tokens: tuple[str, ...]) -> sa.ColumnElement[bool]:
    """``system|code`` matches exactly; a bare ``code`` matches it in any system."""
    return sa.or_(
        *(
            column == token if "|" in token else column.endswith(f"|{token}", autoescape=True)
            for token in tokens
        )
    )
