"""The FHIR R4 REST face (contract section 2; interop.md 3d; reliability.md sections 4-5).

* ``GET /fhir/metadata``: the CapabilityStatement, listing exactly what is below;
* ``POST /fhir/Observation`` (``If-None-Exist`` conditional create) and ``POST /fhir``
  (Bundle ``transaction``: all or nothing; ``batch``: per entry): the Observations are
  read (:mod:`service.adapters.fhir_reader`), stored and assessed as on
  ``POST /assessments``; the received resources get server ids and are readable;
* reads and searches of the resource index: DiagnosticReport, Observation,
  BodyStructure, Patient.

JSON is parsed strictly (:mod:`service.adapters.strict_json`); ``_format`` and
``Accept`` choose JSON or 406; ``Prefer: return=minimal|representation|OperationOutcome``;
``ETag: W/"<versionId>"``; every error is an OperationOutcome (:mod:`.errors`).
Handlers are ``async`` and do their work inline (performance.md 3.3).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from email.utils import format_datetime
from typing import Annotated, Any, Final
from urllib.parse import parse_qsl

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy import Engine

from service import __version__, services
from service.adapters import audit, fhir_inbound, fhir_index, fhir_reader, fhir_writer, strict_json
from service.adapters.db import Store, StoredResource, open_store
from service.adapters.writer import Writer
from service.config import Settings
from service.domain.errors import (
    DomainError,
    InvalidInput,
    NotFound,
    UnsupportedInput,
)
from service.domain.model import AssessmentParameters, PatientIdentity
from service.entrypoints import metrics, push_worker
from service.entrypoints.api import auth
from service.entrypoints.api.deps import (
    EngineDep,
    SettingsDep,
    TenantDep,
    WriterDep,
    public_root,
    read_body,
)
from service.entrypoints.api.errors import (
    FHIR_JSON,
    HttpProblem,
    domain_outcome,
    operation_outcome,
)

router = APIRouter(prefix="/fhir", tags=["fhir"])
CHANNEL: Final = "fhir"  # of the ingest metrics

FHIR_VERSION: Final = "4.0.1"
READABLE: Final = ("DiagnosticReport", "Observation", "BodyStructure", "Patient")
_JSON_TYPES: Final = frozenset({"application/fhir+json", "application/json"})
_FORMATS: Final = _JSON_TYPES | {"json"}
_ANY: Final = frozenset({"*/*", "application/*"})

Resource = dict[str, Any]


class FhirResponse(Response):
    media_type = FHIR_JSON


# -- content negotiation ----------------------------------------------------------------


def _media_params(header: str) -> list[tuple[str, dict[str, str]]]:
    found = []
    for part in header.split(","):
        pieces = [piece.strip() for piece in part.split(";")]
        params = {
            name.strip().lower(): value.strip().strip('"')
            for name, _, value in (piece.partition("=") for piece in pieces[1:])
        }
        if pieces[0]:
            found.append((pieces[0].lower(), params))
    return found


def _fhir_version_ok(params: dict[str, str]) -> bool:
    version = params.get("fhirversion")
    return version is None or version in ("4.0", FHIR_VERSION)


def negotiate(request: Request) -> None:
    """Refuse with 406 unless the answer may be FHIR JSON R4 (``_format`` wins over Accept)."""
    chosen = request.query_params.get("_format")
    if chosen is not None:
        if chosen.lower() not in _FORMATS:
            raise HttpProblem(406, "not-supported", f"_format {chosen!r}: only JSON is served")
        return
    accept = request.headers.get("accept")
    if not accept:
        return
    acceptable = [
        (media, params)
        for media, params in _media_params(accept)
        if (media in _JSON_TYPES or media in _ANY) and _fhir_version_ok(params)
    ]
    if not acceptable:
        raise HttpProblem(
            406, "not-supported", f"Accept {accept!r}: only application/fhir+json (R4) is served"
        )


def _require_json_body(request: Request) -> None:
    media = _media_params(request.headers.get("content-type", ""))
    if not media or media[0][0] not in _JSON_TYPES or not _fhir_version_ok(media[0][1]):
        raise HttpProblem(
            415,
            "not-supported",
            "Content-Type must be application/fhir+json (FHIR R4) or application/json",
        )


def json_limits(settings: Settings) -> strict_json.JsonLimits:
    """The JSON caps of *settings* (reliability.md section 5)."""
    return strict_json.JsonLimits(
        max_depth=settings.json_max_depth,
        max_array_items=settings.json_max_array_items,
        max_string_bytes=settings.json_max_string_bytes,
        max_number_chars=settings.json_max_number_chars,
    )


def fhir_limits(settings: Settings) -> fhir_inbound.Limits:
    """The caps on a FHIR body of *settings* (reliability.md section 5)."""
    return fhir_inbound.Limits(
        settings.fhir_max_bundle_bytes, settings.fhir_max_resource_bytes, json_limits(settings)
    )


def parse_fhir(data: bytes, settings: Settings, limit: int | None = None) -> Any:
    """:func:`.fhir_inbound.parse` within the limits of *settings*."""
    return fhir_inbound.parse(data, fhir_limits(settings), limit)


async def _body(request: Request, settings: Settings, limit: int) -> Any:
    _require_json_body(request)
    return parse_fhir(await read_body(request, limit), settings, limit)


async def _posted(request: Request, settings: Settings, limit: int, kind: str, route: str) -> Any:
    """The negotiated, parsed body of a write to *route*, which takes one *kind*."""
    negotiate(request)
    document = await _body(request, settings, limit)
    if not isinstance(document, dict) or document.get("resourceType") != kind:
        raise InvalidInput(f"POST {route} takes one {kind} resource", "resourceType")
    return document


# -- reading input into reports ------------------------------------------------------------


def _stored_patient(store: Store, patient_id: str, tenant: str) -> PatientIdentity | None:
    """The patient of *tenant* whose Patient resource has id *patient_id*, if any."""
    try:
        stored = store.resource("Patient", patient_id, tenant)
    except NotFound:
        return None
    identifier = fhir_index.loads(stored.body)["identifier"][0]
    return PatientIdentity(identifier["system"], identifier["value"])


def patient_resolver(engine: Engine, tenant: str) -> fhir_reader.PatientResolver:
    """Patient/<id> references to patients of *tenant* the index of *engine* knows."""

    def resolve(patient_id: str) -> PatientIdentity | None:
        with open_store(engine) as store:
            return _stored_patient(store, patient_id, tenant)

    return resolve


def _inbound_of(read: fhir_inbound.FhirRead) -> list[services.Inbound]:
    """The reports of *read* to store, the input's resources indexed with the first."""
    records = tuple(record for record in read.received.records if record is not None)
    return [
        services.Inbound(report, read.digest, received=records if index == 0 else ())
        for index, report in enumerate(read.reports)
    ]


def _read(
    document: Any, settings: Settings, resolve_patient: fhir_reader.PatientResolver
) -> tuple[list[services.Inbound], fhir_inbound.Received]:
    read = fhir_inbound.read(document, settings.patient_system, resolve_patient)
    return _inbound_of(read), read.received


async def read_assessment_body(
    data: bytes, request: Request, settings: Settings, tenant: str
) -> list[services.Inbound]:
    """``POST /assessments`` with ``application/fhir+json``: an Observation or a Bundle,
    read by the app's reader (:mod:`..read_process`) or, when it names a stored Patient by
    id (or the reader is this process), here with the resource index."""
    read = await request.app.state.sr_reader.read_fhir(data)
    if read is not None:
        return _inbound_of(read)
    return read_inbound(data, settings, patient_resolver(request.app.state.engine, tenant))


def read_inbound(
    data: bytes, settings: Settings, resolve_patient: fhir_reader.PatientResolver
) -> list[services.Inbound]:
    """The reports of the FHIR body *data* (an Observation or a Bundle), ready to store."""
    return _read(parse_fhir(data, settings), settings, resolve_patient)[0]


# -- answers ------------------------------------------------------------------------------


def _base(request: Request) -> str:
    return f"{public_root(request)}/fhir"


def _http_date(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def _representation(stored: StoredResource) -> Resource:
    return fhir_index.with_version(
        stored.body, stored.version, stored.last_updated.astimezone(UTC).isoformat()
    )


def _version_headers(stored: StoredResource, base: str | None = None) -> dict[str, str]:
    headers = {"ETag": f'W/"{stored.version}"', "Last-Modified": _http_date(stored.last_updated)}
    if base is not None:
        headers["Location"] = (
            f"{base}/{stored.resource_type}/{stored.resource_id}/_history/{stored.version}"
        )
    return headers


def _prefer(request: Request) -> str:
    for media, params in _media_params(request.headers.get("prefer", "").replace(" ", ",")):
        if media.startswith("return="):
            return media.removeprefix("return=")
        if "return" in params:
            return params["return"]
    return "representation"


def _write_answer(request: Request, status: int, stored: StoredResource, message: str) -> Response:
    headers = _version_headers(stored, _base(request))
    prefer = _prefer(request)
    if prefer == "minimal":
        return Response(status_code=status, headers=headers)
    if prefer.lower() == "operationoutcome":
        outcome = operation_outcome("informational", message)
        outcome["issue"][0]["severity"] = "information"
        return FhirResponse(fhir_writer.dumps_answer(outcome), status, headers)
    return FhirResponse(fhir_writer.dumps_answer(_representation(stored)), status, headers)


# -- metadata ------------------------------------------------------------------------------


def capability_statement(base: str, security: Resource) -> Resource:
    """What this server supports, exactly (FHIR R4 CapabilityStatement, kind instance);
    *security* is its ``rest.security``."""

    def resource(kind: str, interactions: Iterable[str], **more: Any) -> Resource:
        return {"type": kind, "interaction": [{"code": code} for code in interactions], **more}

    def param(name: str, kind: str, text: str) -> Resource:
        return {"name": name, "type": kind, "documentation": text}

    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2025-01-01",
        "kind": "instance",
        "software": {"name": "tumour-response", "version": __version__},
        "implementation": {"description": "tumour response assessment", "url": base},
        "fhirVersion": FHIR_VERSION,
        "format": ["json", FHIR_JSON],
        "rest": [
            {
                "mode": "server",
                "security": security,
                "resource": [
                    resource(
                        "DiagnosticReport",
                        ("read", "search-type"),
                        searchParam=[
                            param(
                                "subject",
                                "reference",
                                "Patient/[id], or subject:identifier=system|value",
                            ),
                            param("date", "date", "effective date; prefixes eq ge le gt lt"),
                        ],
                    ),
                    resource(
                        "Observation",
                        ("read", "create"),
                        conditionalCreate=True,
                        searchParam=[
                            param("identifier", "token", "If-None-Exist only"),
                            param("subject", "reference", "If-None-Exist only; :identifier"),
                            param("date", "date", "If-None-Exist only"),
                        ],
                    ),
                    resource("BodyStructure", ("read",)),
                    resource(
                        "Patient",
                        ("read", "search-type"),
                        searchParam=[param("identifier", "token", "system|value")],
                    ),
                    resource(
                        "AuditEvent",
                        ("search-type",),
                        searchParam=[
                            param("date", "date", "recorded; prefixes eq ge le gt lt"),
                            param("patient", "reference", "Patient/[id]"),
                            param("type", "token", "[system|]code: rest, 110104"),
                            param("subtype", "token", "[system|]code: read, create, ..."),
                            param("outcome", "token", "0, 4, 8, 12"),
                            param("_count", "number", "newest first; at most 1000"),
                        ],
                    ),
                ],
                "interaction": [{"code": "transaction"}, {"code": "batch"}],
            }
        ],
    }


@router.get("/metadata", response_class=FhirResponse)
async def metadata(request: Request) -> Response:
    """The CapabilityStatement (FHIR R4 http.html: servers SHALL provide one)."""
    negotiate(request)
    security = auth.capability_security(request.app.state.settings)
    return FhirResponse(fhir_writer.dumps_answer(capability_statement(_base(request), security)))


# -- searches -----------------------------------------------------------------------------


_DATE_PREFIXES: Final = ("eq", "ge", "le", "gt", "lt")


def date_bounds(values: Iterable[str]) -> tuple[date | None, date | None]:
    since: date | None = None
    until: date | None = None
    for raw in values:
        prefix = raw[:2] if raw[:2] in _DATE_PREFIXES else "eq"
        text = raw[2:] if raw[:2] in _DATE_PREFIXES else raw
        try:
            day = date.fromisoformat(text[:10])
        except ValueError:
            raise InvalidInput(f"date {raw!r} is not YYYY-MM-DD", "date") from None
        low = day if prefix in ("eq", "ge") else day.fromordinal(day.toordinal() + 1)
        high = day if prefix in ("eq", "le") else day.fromordinal(day.toordinal() - 1)
        if prefix in ("eq", "ge", "gt"):
            since = low if since is None else max(since, low)
        if prefix in ("eq", "le", "lt"):
            until = high if until is None else min(until, high)
    return since, until


def _token(value: str, name: str) -> str:
    if "|" not in value:
        raise InvalidInput(f"{name} must be system|value", name)
    return value


def _identifier_patient(value: str, name: str) -> PatientIdentity:
    system, _, text = _token(value, name).partition("|")
    return PatientIdentity(system, text)


def search(
    store: Store,
    resource_type: str,
    params: list[tuple[str, str]],
    allowed: frozenset[str],
    tenant: str,
) -> list[StoredResource]:
    """Indexed resources of *tenant* matching FHIR search *params* (all must hold)."""
    unknown = sorted({name for name, _ in params if name not in allowed and name != "_format"})
    if unknown:
        raise InvalidInput(
            f"unsupported search parameter(s) {', '.join(unknown)} for {resource_type};"
            f" supported: {', '.join(sorted(allowed))}",
            unknown[0],
        )
    patients: list[PatientIdentity | None] = []
    identifier = None
    for name, value in params:
        if name in ("subject:identifier", "patient:identifier"):
            patients.append(_identifier_patient(value, name))
        elif name in ("subject", "patient"):
            patients.append(_stored_patient(store, value.rstrip("/").rsplit("/", 1)[-1], tenant))
        elif name == "identifier":
            identifier = _token(value, name)
    if any(patient is None for patient in patients) or len(set(patients)) > 1:
        return []
    since, until = date_bounds(value for name, value in params if name == "date")
    return store.search_resources(
        resource_type,
        patient=patients[0] if patients else None,
        identifier=identifier,
        since=since,
        until=until,
        tenant=tenant,
    )


def _searchset(request: Request, found: list[StoredResource]) -> Response:
    base = _base(request)
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(found),
        "link": [{"relation": "self", "url": str(request.url)}],
        "entry": [
            {
                "fullUrl": f"{base}/{stored.resource_type}/{stored.resource_id}",
                "resource": _representation(stored),
                "search": {"mode": "match"},
            }
            for stored in found
        ],
    }
    return FhirResponse(fhir_writer.dumps_answer(bundle))


def _params(resource_type: str, *names: str) -> frozenset[str]:
    """The search parameters of *resource_type*: *names*, and ``identifier`` when its
    rows keep their identifier (``fhir_index.SEARCHED_BY_IDENTIFIER``)."""
    by_identifier = ("identifier",) if resource_type in fhir_index.SEARCHED_BY_IDENTIFIER else ()
    return frozenset((*names, *by_identifier))


_REPORT_PARAMS: Final = _params("DiagnosticReport", "subject", "subject:identifier", "date")
_OBSERVATION_PARAMS: Final = _params("Observation", "subject", "subject:identifier", "date")
_PATIENT_PARAMS: Final = _params("Patient")


@router.get("/DiagnosticReport", response_class=FhirResponse)
async def search_reports(
    request: Request,
    engine: EngineDep,
    tenant: TenantDep,
    subject: Annotated[str | None, Query(description="Patient/[id]")] = None,
    date_: Annotated[
        list[str] | None, Query(alias="date", description="[prefix]YYYY-MM-DD")
    ] = None,
) -> Response:
    """DiagnosticReports by patient (``subject``, ``subject:identifier=system|value``) and
    effective date."""
    negotiate(request)
    params = list(request.query_params.multi_items())
    with open_store(engine) as store:
        found = search(store, "DiagnosticReport", params, _REPORT_PARAMS, tenant)
    return _searchset(request, found)


@router.get("/Patient", response_class=FhirResponse)
async def search_patients(
    request: Request,
    engine: EngineDep,
    tenant: TenantDep,
    identifier: Annotated[str | None, Query(description="system|value")] = None,
) -> Response:
    """Patients by identifier."""
    negotiate(request)
    params = list(request.query_params.multi_items())
    with open_store(engine) as store:
        found = search(store, "Patient", params, _PATIENT_PARAMS, tenant)
    return _searchset(request, found)


def _read_route(kind: str) -> None:
    async def read(
        request: Request, engine: EngineDep, tenant: TenantDep, resource_id: str
    ) -> Response:
        negotiate(request)
        with open_store(engine) as store:
            stored = store.resource(kind, resource_id, tenant)
        return FhirResponse(
            fhir_writer.dumps_answer(_representation(stored)), 200, _version_headers(stored)
        )

    read.__doc__ = f"Read a {kind} by id."
    router.add_api_route(
        f"/{kind}/{{resource_id}}",
        read,
        methods=["GET"],
        response_class=FhirResponse,
        name=f"read_{kind}",
    )


for _kind in READABLE:
    _read_route(_kind)


# -- writes -------------------------------------------------------------------------------


def _conditional_match(store: Store, criteria: str, tenant: str) -> StoredResource | None:
    """The one existing Observation matching an ``If-None-Exist`` query, or None; more
    than one is 412 (FHIR http.html, conditional create)."""
    params = parse_qsl(criteria.removeprefix("?").removeprefix("Observation?"))
    if not params:
        raise InvalidInput("If-None-Exist has no search parameters", "If-None-Exist")
    found = search(store, "Observation", params, _OBSERVATION_PARAMS, tenant)
    if len(found) > 1:
        raise HttpProblem(
            412, "multiple-matches", f"If-None-Exist matches {len(found)} Observations"
        )
    return found[0] if found else None


async def _store_input(
    writer: Writer,
    inbound: list[services.Inbound],
    received: fhir_inbound.Received,
    request: Request,
    tenant: str,
    tally: services.Tally,
) -> list[tuple[StoredResource, bool]]:
    """Store and assess in one transaction; per input resource its index entry and
    whether it is new. Changed results are then pushed to the PACS, if one is set."""

    def store_and_assess(store: Store) -> list[tuple[StoredResource, bool]]:
        forget_earlier_attempt()
        keys = [location.split("/", 1) for location in received.locations]
        existed = [_exists(store, kind, resource_id, tenant) for kind, resource_id in keys]
        services.assess_reports(
            store,
            inbound,
            [],
            AssessmentParameters(),
            public_root(request),
            changed=changed,
            tenant=tenant,
            tally=tally,
        )
        return [
            (store.resource(kind, resource_id, tenant), not before)
            for (kind, resource_id), before in zip(keys, existed, strict=True)
        ]

    with push_worker.collect(request.app.state.push_worker) as changed:
        forget_earlier_attempt = services.fresh_attempt(changed, tally)
        return await writer.run(store_and_assess)


def _exists(store: Store, kind: str, resource_id: str, tenant: str) -> bool:
    try:
        store.resource(kind, resource_id, tenant)
    except NotFound:
        return False
    return True


@router.post(
    "/Observation",
    response_class=FhirResponse,
    status_code=201,
    openapi_extra={
        "requestBody": {"required": True, "content": {FHIR_JSON: {"schema": {"type": "object"}}}}
    },
)
async def create_observation(
    request: Request,
    settings: SettingsDep,
    engine: EngineDep,
    writer: WriterDep,
    tenant: TenantDep,
) -> Response:
    """Create a measurement Observation; ``If-None-Exist`` makes it conditional."""
    with metrics.ingest(CHANNEL) as tally:
        limit = settings.fhir_max_resource_bytes
        document = await _posted(request, settings, limit, "Observation", "/fhir/Observation")
        condition = request.headers.get("if-none-exist")
        if condition:
            with open_store(engine) as store:
                match = _conditional_match(store, condition, tenant)
            if match is not None:
                tally.redelivered += 1
                return _write_answer(request, 200, match, "an Observation matches If-None-Exist")
        inbound, received = _read(document, settings, patient_resolver(engine, tenant))
        stored, created = (await _store_input(writer, inbound, received, request, tenant, tally))[0]
    message = "created" if created else "already stored with the same content"
    return _write_answer(request, 201 if created else 200, stored, message)


def _entry_response(stored: StoredResource, created: bool) -> Resource:
    return {
        "status": "201 Created" if created else "200 OK",
        "location": f"{stored.resource_type}/{stored.resource_id}/_history/{stored.version}",
        "etag": f'W/"{stored.version}"',
        "lastModified": stored.last_updated.astimezone(UTC).isoformat(),
    }


def _check_entries(entries: list[Any]) -> None:
    for index, entry in enumerate(entries):
        request = entry.get("request") if isinstance(entry, dict) else None
        if not isinstance(request, dict) or request.get("method") != "POST":
            raise UnsupportedInput(
                "only POST entries (create) are supported", f"Bundle.entry[{index}].request.method"
            )


async def _transaction(
    document: Resource,
    request: Request,
    settings: Settings,
    engine: Any,
    tenant: str,
    tally: services.Tally,
) -> list[Resource]:
    """All entries or none: conditional matches answered, the rest stored together."""
    entries: list[Any] = document.get("entry") or []
    _check_entries(entries)
    answers: dict[int, Resource] = {}
    with open_store(engine) as store:
        for index, entry in enumerate(entries):
            condition = entry["request"].get("ifNoneExist")
            if condition and entry["resource"].get("resourceType") == "Observation":
                match = _conditional_match(store, condition, tenant)
                if match is not None:
                    answers[index] = _entry_response(match, created=False)
    rest = [index for index in range(len(entries)) if index not in answers]
    if rest:
        subset = {**document, "type": "transaction", "entry": [entries[i] for i in rest]}
        inbound, received = _read(subset, settings, patient_resolver(engine, tenant))
        writer = request.app.state.writer
        stored = await _store_input(writer, inbound, received, request, tenant, tally)
        for index, (resource, created) in zip(rest, stored, strict=True):
            answers[index] = _entry_response(resource, created)
    return [{"response": answers[index]} for index in range(len(entries))]


async def _batch(
    document: Resource,
    request: Request,
    settings: Settings,
    engine: Any,
    tenant: str,
    tally: services.Tally,
) -> list[Resource]:
    """Each entry on its own; a failed entry answers with its OperationOutcome."""
    found = []
    for entry in document.get("entry") or []:
        single = {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}
        try:
            _check_entries([entry])
            found.extend(await _transaction(single, request, settings, engine, tenant, tally))
        except DomainError as exc:
            status, outcome = domain_outcome(exc)
            found.append({"response": {"status": str(status), "outcome": outcome}})
        except HttpProblem as exc:
            outcome = operation_outcome(exc.code, str(exc))
            found.append({"response": {"status": str(exc.status), "outcome": outcome}})
    return found


@router.post(
    "",
    response_class=FhirResponse,
    openapi_extra={
        "requestBody": {"required": True, "content": {FHIR_JSON: {"schema": {"type": "object"}}}}
    },
)
async def post_bundle(
    request: Request, settings: SettingsDep, engine: EngineDep, tenant: TenantDep
) -> Response:
    """A ``transaction`` (all or nothing) or ``batch`` (per entry) Bundle."""
    with metrics.ingest(CHANNEL) as tally:
        limit = settings.fhir_max_bundle_bytes
        document = await _posted(request, settings, limit, "Bundle", "/fhir")
        fhir_reader.resources_of(document)  # types and limits, before anything is stored
        kind = document.get("type")
        if kind in ("transaction", "batch"):
            audit.note_interaction(kind)
        if kind == "transaction":
            entries = await _transaction(document, request, settings, engine, tenant, tally)
        elif kind == "batch":
            entries = await _batch(document, request, settings, engine, tenant, tally)
        else:
            raise UnsupportedInput(
                f"POST /fhir takes a transaction or batch Bundle, not {kind!r}", "Bundle.type"
            )
    answer = {"resourceType": "Bundle", "type": f"{kind}-response", "entry": entries}
    return FhirResponse(fhir_writer.dumps_answer(answer))
