"""The audit trail of the HTTP API (issue 6; :mod:`service.adapters.audit`).

* :class:`AuditMiddleware` gives every request, refused or failed ones included, exactly
  one AuditEvent: RESTful operation, its interaction and action from the method and the
  matched route, the caller (``request.state.principal``, else anonymous) and its
  address, the outcome from the status (4xx: 4, 5xx: 8). Writes save it with their data
  (:func:`service.adapters.db.open_store`); it is saved again once the status is known,
  before the response starts, when that changes it.
* ``GET /fhir/AuditEvent`` searches the caller's tenant's events, newest first.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.adapters import audit, fhir_index
from service.adapters.fhir_writer import dumps_answer
from service.domain.errors import InvalidInput
from service.entrypoints.api.deps import EngineDep, TenantDep, public_root
from service.entrypoints.api.fhir import FhirResponse, date_bounds, negotiate

router = APIRouter(prefix="/fhir", tags=["fhir"])

MAX_COUNT: Final = 1000
# FHIR restful-interaction and AuditEvent.action of each method (BALP).
_WRITES: Final = {"POST": ("create", "C"), "PUT": ("update", "U"), "PATCH": ("patch", "U")}
_DELETE: Final = ("delete", "D")


class AuditMiddleware:
    """One AuditEvent per HTTP request (pure ASGI: it sees the final status and any
    exception the app lets through)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})  # request.state, shared with the handlers
        client = scope.get("client")
        trail = audit.Trail(
            type=audit.REST,
            action="E",
            address=client[0] if client else None,
            tenant=scope["app"].state.settings.tenant,  # until a token names one
            refresh=lambda trail: _describe(trail, scope),
        )
        decided = False

        def decide(status: int) -> None:
            nonlocal decided
            if not decided:
                decided = True
                _finish(trail, scope, status)

        async def send_audited(message: Message) -> None:
            if message["type"] == "http.response.start":
                decide(message["status"])
            await send(message)

        with audit.recording(trail):
            try:
                await self.app(scope, receive, send_audited)
            except Exception:
                decide(500)
                raise


def _describe(trail: audit.Trail, scope: Scope) -> None:
    """What the request is, as far as routing and authentication have told."""
    principal = scope["state"].get("principal")
    if principal is not None:
        trail.tenant = principal.tenant
        trail.requestor = principal.client_id or principal.subject
    method = scope["method"]
    route = scope.get("route")
    path: str = getattr(route, "path", None) or scope["path"]
    if method in _WRITES or method == "DELETE":
        code, trail.action = _WRITES.get(method, _DELETE)
    elif path == "/fhir/metadata":
        code, trail.action = "capabilities", "E"
    elif path.startswith("/fhir/") and not scope.get("path_params"):
        code, trail.action = "search-type", "E"
        trail.query = scope["query_string"].decode("latin-1")
    else:
        code, trail.action = "read", "R"
    if trail.subtype is None:  # else the handler named it (transaction, batch)
        trail.subtype = audit.interaction(code)


def _finish(trail: audit.Trail, scope: Scope, status: int) -> None:
    """The status is known: record the outcome and save the event if that changed it."""
    if status >= 500:
        trail.fail(audit.Outcome.SERIOUS_FAILURE, f"HTTP {status}")
    elif status >= 400:
        trail.fail(audit.Outcome.MINOR_FAILURE, f"HTTP {status}")
    audit.save_alone(trail, scope["app"].state.engine)


def _count(raw: str | None) -> int:
    if raw is None:
        return 100
    if not raw.isdigit() or not 0 < int(raw) <= MAX_COUNT:
        raise InvalidInput(f"_count must be 1 to {MAX_COUNT}", "_count")
    return int(raw)


_PARAMS: Final = frozenset({"date", "patient", "type", "subtype", "outcome", "_count", "_format"})


@router.get("/AuditEvent", response_class=FhirResponse)
async def search_audit_events(
    request: Request,
    engine: EngineDep,
    tenant: TenantDep,
    date_: Annotated[
        list[str] | None, Query(alias="date", description="[prefix]YYYY-MM-DD of recorded")
    ] = None,
    patient: Annotated[str | None, Query(description="Patient/[id]")] = None,
    type_: Annotated[
        list[str] | None, Query(alias="type", description="[system|]code, e.g. rest, 110104")
    ] = None,
    subtype: Annotated[
        list[str] | None, Query(description="[system|]code, e.g. read, create")
    ] = None,
    outcome: Annotated[list[str] | None, Query(description="0, 4, 8 or 12")] = None,
    count: Annotated[str | None, Query(alias="_count", description="at most 1000")] = None,
) -> Response:
    """The tenant's AuditEvents, newest first (FHIR search; scope system/AuditEvent.read)."""
    negotiate(request)
    unknown = sorted(set(request.query_params) - _PARAMS)
    if unknown:
        raise InvalidInput(f"unsupported search parameter(s) {', '.join(unknown)}", unknown[0])
    since, until = date_bounds(date_ or [])
    query = audit.Query(
        tenant=tenant,
        since=since,
        until=until,
        patient=None if patient is None else patient.rstrip("/").rsplit("/", 1)[-1],
        types=_tokens(type_),
        subtypes=_tokens(subtype),
        outcomes=tuple(_outcome(value) for value in _tokens(outcome)),
        count=_count(count),
    )
    total, bodies = audit.search(engine, query)
    base = f"{public_root(request)}/fhir"
    entries: list[dict[str, Any]] = []
    for body in bodies:
        resource = fhir_index.loads(body)
        entries.append(
            {
                "fullUrl": f"{base}/AuditEvent/{resource['id']}",
                "resource": resource,
                "search": {"mode": "match"},
            }
        )
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": [{"relation": "self", "url": str(request.url)}],
        "entry": entries,
    }
    return FhirResponse(dumps_answer(bundle))


def _tokens(values: list[str] | None) -> tuple[str, ...]:
    """Comma-separated values are alternatives (FHIR search: OR)."""
    return tuple(token for value in values or () for token in value.split(",") if token)


def _outcome(value: str) -> int:
    if value not in {str(int(outcome)) for outcome in audit.Outcome}:
        raise InvalidInput(f"outcome {value!r}: one of 0, 4, 8, 12", "outcome")
    return int(value)
