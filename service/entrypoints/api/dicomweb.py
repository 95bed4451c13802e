"""STOW-RS: ``POST /dicomweb/studies[/{study}]`` (PS3.18 section 10.5, Annex I; contract
section 2; interop.md 4.1).

The body is read chunk by chunk into the bounded ``multipart/related`` parser; a broken
envelope (syntax, no part, a count cap) is 400 and a size cap 413, with nothing stored.
Then every part is read on its own by the app's SR reader (:mod:`..read_process`: the
companion process that reads ``POST /assessments``' SRs, :func:`dicom_status.read_instance`
in the serving process with ``TR_SR_READ_PROCESS=false``) and the readable
reports are stored and assessed one by one, in date order, by the use case behind
``POST /assessments``. The answer is the Store Instances Response Module as
``application/dicom+json`` (exactly that media type: dicomweb-client parses no other):
200 all stored, 202 some stored, 409 none stored, 503 with ``Retry-After`` none stored
because the database is unavailable (PS3.18 Table 10.5.3-1; reliability.md section 4). Each failed
instance is in FailedSOPSequence with its Failure Reason (README "DICOM intake"); the
reasons in words go in a ``Warning: 299`` header (PS3.18 8.10.3).

RetrieveURL (0008,1190) is type 2 and left empty: the service offers no WADO-RS.
"""

from __future__ import annotations

import logging
import re

from fastapi import APIRouter, Request
from fastapi.responses import Response

from service.adapters import multipart
from service.adapters.fhir_writer import Resource, dumps
from service.adapters.writer import Writer
from service.config import Settings
from service.entrypoints import dicom_status, metrics, read_process, sr_instance
from service.entrypoints.api.deps import SettingsDep, TenantDep, WriterDep, public_root

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/dicomweb", tags=["dicomweb"])

CHANNEL = "stow-rs"  # of the ingest metrics
DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
MULTIPART_RELATED = "multipart/related"
_WARNING_CHARS = 2000
_NOT_PRINTABLE = re.compile(r'[^\x20-\x7e]|["\\]')

_BODY = {
    "required": True,
    "content": {
        f'{MULTIPART_RELATED}; type="{DICOM}"': {"schema": {"type": "string", "format": "binary"}}
    },
}
_ANSWERS: dict[int | str, dict[str, object]] = {
    status: {"description": text, "content": {DICOM_JSON: {"schema": {"type": "object"}}}}
    for status, text in (
        (200, "every instance stored (Store Instances Response, PS3.18 Annex I)"),
        (202, "some instances stored; FailedSOPSequence lists the others"),
        (400, "malformed multipart/related body or a count limit passed; nothing stored"),
        (409, "no instance stored; FailedSOPSequence gives each Failure Reason"),
        (413, "request or part too large; nothing stored"),
        (415, 'Content-Type is not multipart/related; type="application/dicom"'),
        (503, "database unavailable, nothing stored: FailureReason A700, Retry-After"),
    )
}


def limits(settings: Settings) -> multipart.Limits:
    """The multipart caps of *settings* (reliability.md section 5)."""
    return multipart.Limits(
        request_bytes=settings.stow_max_request_bytes,
        parts=settings.stow_max_parts,
        part_bytes=settings.stow_max_part_bytes,
        header_bytes=settings.stow_max_part_header_bytes,
        headers_per_part=settings.stow_max_headers_per_part,
        preamble_epilogue_bytes=settings.stow_max_preamble_epilogue_bytes,
    )


@router.post(
    "/studies",
    openapi_extra={"requestBody": _BODY},
    responses=_ANSWERS,
    response_class=Response,
)
async def store_instances(
    request: Request, settings: SettingsDep, writer: WriterDep, tenant: TenantDep
) -> Response:
    """Store SR instances of any study; each is assessed."""
    return await _stow(request, settings, writer, tenant, study=None)


@router.post(
    "/studies/{study}",
    openapi_extra={"requestBody": _BODY},
    responses=_ANSWERS,
    response_class=Response,
)
async def store_study_instances(
    study: str, request: Request, settings: SettingsDep, writer: WriterDep, tenant: TenantDep
) -> Response:
    """Store SR instances of one study; an instance of another study fails (0xC112)."""
    return await _stow(request, settings, writer, tenant, study=study)


async def _stow(
    request: Request, settings: Settings, writer: Writer, tenant: str, study: str | None
) -> Response:
    content_type = request.headers.get("content-type", "")
    try:
        parts = await _read_parts(request, content_type, settings)
    except _Refusal as refusal:
        logger.info("STOW-RS request refused", extra={"status": refusal.status})
        metrics.refused(CHANNEL, f"http-{refusal.status}")
        return refusal.response()
    stored: list[dicom_status.Instance] = []
    failed: list[sr_instance.InstanceRefused] = []
    readable: list[dicom_status.Instance] = []
    for part in parts:
        try:
            readable.append(await _read_part(part, request, study))
        except sr_instance.InstanceRefused as refused:
            metrics.refused(CHANNEL, metrics.reason_class(refused))
            failed.append(refused)
    root_url = public_root(request)
    pusher = request.app.state.push_worker
    unavailable: sr_instance.InstanceRefused | None = None
    for instance in sorted(readable, key=lambda item: item.inbound.report.date):
        if unavailable is not None:  # the database is down: do not wait for it again
            failed.append(dicom_status.refused_like(unavailable, instance))
            continue
        try:
            with (
                metrics.ingest(CHANNEL) as tally,
                dicom_status.committing(
                    instance, root_url, pusher, tenant=tenant, tally=tally
                ) as attempt,
            ):
                await writer.run(attempt)
        except sr_instance.InstanceRefused as refused:
            failed.append(refused)
            if refused.retry_after_seconds is not None:
                unavailable = refused
        else:
            stored.append(instance)
    return _answer(stored, failed)


async def _read_part(
    part: multipart.Part, request: Request, study: str | None
) -> dicom_status.Instance:
    """The instance of *part*, read by the app's reader (:mod:`..read_process`)."""
    if part.media_type not in (None, DICOM):
        raise sr_instance.InstanceRefused(
            sr_instance.Condition.CANNOT_UNDERSTAND, f"a part of type {part.media_type}"
        )
    reader: read_process.Reader = request.app.state.sr_reader
    return await reader.read_instance(part.body, study)


class _Refusal(Exception):
    """The whole request is refused before any instance is read."""

    def __init__(self, status: int, message: str, reason: int | None = None) -> None:
        super().__init__(message)
        self.status, self.reason = status, reason

    def response(self) -> Response:
        body: Resource = {}
        if self.reason is not None:
            body["0008119A"] = {"vr": "SQ", "Value": [_us("00081197", self.reason)]}
        return _json(self.status, body, [str(self)])


async def _read_parts(
    request: Request, content_type: str, settings: Settings
) -> list[multipart.Part]:
    if multipart.media_type(content_type) != MULTIPART_RELATED:
        raise _Refusal(415, f'Content-Type must be {MULTIPART_RELATED}; type="{DICOM}"')
    limit = settings.stow_max_request_bytes
    cannot_understand = sr_instance.STATUSES[sr_instance.Condition.CANNOT_UNDERSTAND]
    too_large = sr_instance.STATUSES[sr_instance.Condition.LIMIT]
    try:
        declared_type = multipart.parameters(content_type).get("type")
        if declared_type is not None and multipart.media_type(declared_type) != DICOM:
            raise _Refusal(415, f"parts of type {declared_type} are not supported")
        parser = multipart.MultipartParser(multipart.boundary_of(content_type), limits(settings))
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise multipart.SizeLimitExceeded(f"request body over {limit} bytes")
        parts: list[multipart.Part] = []
        async for chunk in request.stream():
            parts += parser.feed(chunk)
        parser.close()
    except multipart.SizeLimitExceeded as exc:
        raise _Refusal(413, str(exc), too_large.failure_reason) from exc
    except multipart.CountLimitExceeded as exc:
        raise _Refusal(400, str(exc), too_large.failure_reason) from exc
    except multipart.MultipartError as exc:
        raise _Refusal(400, str(exc), cannot_understand.failure_reason) from exc
    return parts


def _answer(
    stored: list[dicom_status.Instance], failed: list[sr_instance.InstanceRefused]
) -> Response:
    body: Resource = {"00081190": {"vr": "UR"}}
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": [_failure(item) for item in failed]}
    if stored:
        body["00081199"] = {
            "vr": "SQ",
            "Value": [_reference(item.sop_class, item.sop_instance) for item in stored],
        }
    status = 200 if not failed else 202 if stored else 409
    retry_after = [item.retry_after_seconds for item in failed if item.retry_after_seconds]
    if retry_after and not stored:  # reliability.md section 4: 503, A700 per instance
        status = 503
    warnings = [f"{item.sop_instance or 'part'}: {item}" for item in failed]
    return _json(status, body, warnings, max(retry_after, default=None))


def _failure(refused: sr_instance.InstanceRefused) -> Resource:
    item = _reference(refused.sop_class, refused.sop_instance)
    item.update(_us("00081197", refused.status.failure_reason))
    return item


def _reference(sop_class: str, sop_instance: str) -> Resource:
    item: Resource = {}
    if sop_class:
        item["00081150"] = {"vr": "UI", "Value": [sop_class]}
    if sop_instance:
        item["00081155"] = {"vr": "UI", "Value": [sop_instance]}
    return item


def _us(tag: str, value: int) -> Resource:
    return {tag: {"vr": "US", "Value": [value]}}


def _json(
    status: int, body: Resource, warnings: list[str], retry_after: int | None = None
) -> Response:
    headers = {}
    if warnings:
        text = _NOT_PRINTABLE.sub("?", "; ".join(warnings)[:_WARNING_CHARS])
        headers["Warning"] = f'299 tumour-response "{text}"'
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return Response(dumps(body), status_code=status, media_type=DICOM_JSON, headers=headers)
