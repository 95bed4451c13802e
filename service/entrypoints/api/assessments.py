"""POST /assessments: measurements in, FHIR R4 assessment Bundle out (contract section 2).

The handler is ``async`` and does its parsing, evaluation and serialisation
inline: CPU-bound work in Starlette's threadpool fights the event loop for the
GIL (performance.md sections 3.3 and 6). DICOM SRs are read by the app's reader
(:mod:`service.entrypoints.read_process`): a companion process by default, awaited
without blocking the event loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import Response

from service import services
from service.adapters import fhir_writer, multipart
from service.adapters.db import Store
from service.config import Settings
from service.entrypoints import metrics, push_worker, read_process
from service.entrypoints.api import fhir
from service.entrypoints.api.deps import (
    SettingsDep,
    TenantDep,
    WriterDep,
    public_root,
    read_body,
)
from service.entrypoints.api.dicomweb import limits
from service.entrypoints.api.errors import FHIR_JSON, HttpProblem
from service.entrypoints.api.params import AssessmentQuery, AssessmentQueryDep

router = APIRouter(tags=["assessments"])

DICOM = "application/dicom"

_BODY = {
    "required": True,
    "content": {DICOM: {"schema": {"type": "string", "format": "binary"}}},
}
_ANSWERS: dict[int | str, dict[str, object]] = {
    200: {
        "description": "a collection Bundle: per timepoint a DiagnosticReport, its result "
        "Observations and the lesions' BodyStructures; with Accept: application/dicom the "
        "assessment of the newest timepoint as a DICOM SR (TID 1500 Enhanced SR)",
        "content": {
            FHIR_JSON: {"schema": {"type": "object"}},
            DICOM: {"schema": {"type": "string", "format": "binary"}},
        },
    },
    **{
        status: {"description": text, "content": {FHIR_JSON: {"schema": {"type": "object"}}}}
        for status, text in (
            (400, "malformed input (OperationOutcome)"),
            (409, "the same SOP Instance UID arrived with different content"),
            (413, "body too large"),
            (406, "Accept names no representation offered"),
            (415, "unsupported media type"),
            (422, "well formed but unusable: not TID 1500, no patient, no date"),
        )
    },
}


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def _read_dicom(
    data: bytes, request: Request, settings: Settings, tenant: str
) -> list[services.Inbound]:
    """One SR in DICOM Part 10, read by the app's reader (:mod:`..read_process`)."""
    reader: read_process.Reader = request.app.state.sr_reader
    return [await reader.read(data)]


async def _read_multipart(
    data: bytes, request: Request, settings: Settings, tenant: str
) -> list[services.Inbound]:
    """Several SRs, one per ``application/dicom`` part (read_body's limit caps the whole)."""
    content_type = request.headers.get("content-type", "")
    declared_type = multipart.parameters(content_type).get("type")
    if declared_type is not None and multipart.media_type(declared_type) != DICOM:
        raise HttpProblem(415, "not-supported", f"parts of type {declared_type} are not read")
    try:
        parts = multipart.parse(data, multipart.boundary_of(content_type), limits(settings))
    except multipart.SizeLimitExceeded as exc:
        raise HttpProblem(413, "too-long", str(exc)) from exc
    return [
        inbound
        for part in parts
        for inbound in await _read_dicom(part.body, request, settings, tenant)
    ]


async def _read_fhir(
    data: bytes, request: Request, settings: Settings, tenant: str
) -> list[services.Inbound]:
    return await fhir.read_assessment_body(data, request, settings, tenant)


# Media type of the request body -> the reader turning it into reports (of the tenant:
# FHIR references resolve among its patients).
_READERS: dict[
    str, Callable[[bytes, Request, Settings, str], Awaitable[list[services.Inbound]]]
] = {
    DICOM: _read_dicom,
    "multipart/related": _read_multipart,
    FHIR_JSON: _read_fhir,
}


@router.post(
    "/assessments",
    openapi_extra={"requestBody": _BODY},
    responses=_ANSWERS,
    response_class=Response,
)
async def post_assessments(
    request: Request,
    settings: SettingsDep,
    writer: WriterDep,
    query: AssessmentQueryDep,
    tenant: TenantDep,
) -> Response:
    """Store the measurements, then assess every timepoint they contain."""
    with metrics.ingest("assessments-http") as tally:
        answer = _answer_for(request.headers.get("accept", ""))
        media_type = _media_type(request)
        reader = _READERS.get(media_type)
        if reader is None:
            raise HttpProblem(
                415,
                "not-supported",
                f"Content-Type {media_type or '(none)'} is not one of {', '.join(_READERS)}",
            )
        data = await read_body(request, settings.max_dicom_body_bytes)
        inbound = await reader(data, request, settings, tenant)
        pusher = request.app.state.push_worker

        with push_worker.collect(pusher, query.criteria, query.params, query.setting) as changed:
            forget_earlier_attempt = services.fresh_attempt(changed, tally)

            def store_and_answer(store: Store) -> Response:
                forget_earlier_attempt()
                return answer(store, inbound, query, request, changed, tenant, tally)

            return await writer.run(store_and_answer)


def _bundle(
    store: Store,
    inbound: list[services.Inbound],
    query: AssessmentQuery,
    request: Request,
    changed: list[services.Change],
    tenant: str,
    tally: services.Tally,
) -> Response:
    """The FHIR answer: the assessment Bundle of every timepoint of the input."""
    bundle = services.assess_reports(
        store,
        inbound,
        query.criteria,
        query.params,
        root_url=public_root(request),
        setting=query.setting,
        changed=changed,
        tenant=tenant,
        tally=tally,
    )
    return Response(fhir_writer.dumps_answer(bundle), media_type=FHIR_JSON)


def _dicom_sr(
    store: Store,
    inbound: list[services.Inbound],
    query: AssessmentQuery,
    request: Request,
    changed: list[services.Change],
    tenant: str,
    tally: services.Tally,
) -> Response:
    """The DICOM answer: the newest timepoint's assessment as an SR (contract section 2).
    No result is stored, so *changed* stays empty: the client has the SR itself."""
    sr = services.assess_newest_as_sr(
        store,
        inbound,
        query.criteria,
        query.params,
        setting=query.setting,
        tenant=tenant,
        tally=tally,
    )
    return Response(sr, media_type=DICOM)


_Answer = Callable[
    [
        Store,
        list[services.Inbound],
        AssessmentQuery,
        Request,
        list[services.Change],
        str,
        services.Tally,
    ],
    Response,
]

# Accept media range -> the representation answering it (RFC 9110 section 12.5.1).
_ANSWERS_BY_ACCEPT: dict[str, _Answer] = {
    DICOM: _dicom_sr,
    FHIR_JSON: _bundle,
    "application/json": _bundle,
    "application/*": _bundle,
    "*/*": _bundle,
}


def _answer_for(accept: str) -> _Answer:
    """The representation of the most preferred media range offered; the Bundle when
    Accept is absent; 406 when no range with q > 0 is offered."""
    if not accept.strip():
        return _bundle
    ranked = []
    for position, media_range in enumerate(accept.split(",")):
        media, *parameters = (part.strip() for part in media_range.split(";"))
        weight = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if weight > 0:
            ranked.append((-weight, position, media.lower()))
    for _weight, _position, media in sorted(ranked):
        if media in _ANSWERS_BY_ACCEPT:
            return _ANSWERS_BY_ACCEPT[media]
    raise HttpProblem(
        406, "not-supported", f"Accept {accept!r} names none of {', '.join(_ANSWERS_BY_ACCEPT)}"
    )
