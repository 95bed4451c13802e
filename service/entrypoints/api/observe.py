"""Per-request observability (README "Observability"): a request id, one access line, the
HTTP metrics, and ``GET /metrics``.

:class:`RequestObserver` is a pure ASGI middleware (no body buffering). It takes the
client's ``X-Request-ID`` when it is a plain token, else makes one, binds it to every log
line of the request and echoes it in the answer. The access line and the metrics name the
matched route's *template* (``/fhir/Patient/{resource_id}``), never the path or the query
string, which may carry a patient identifier (reliability.md 1, item 6). An exception no
handler took becomes a 500 OperationOutcome carrying the request id, and its traceback is
logged without the exception's message (:mod:`service.entrypoints.logs`).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Final

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.entrypoints import logs, metrics
from service.entrypoints.api.errors import internal_error

logger = logging.getLogger(__name__)
router = APIRouter(tags=["operations"])

REQUEST_ID_HEADER: Final = "x-request-id"
UNMATCHED: Final = "unmatched"  # the route label of a path no route serves
_SANE_ID: Final = re.compile(rb"[A-Za-z0-9._:-]{8,128}")


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"description": "Prometheus text format", "content": {"text/plain": {}}}},
)
async def prometheus_metrics() -> Response:
    """This process's metrics in the Prometheus text format."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def request_id(scope: Scope) -> str:
    """The client's X-Request-ID when it is a plain token of 8-128 characters, else a
    new one."""
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER.encode() and _SANE_ID.fullmatch(value):
            return str(value.decode("ascii"))
    return uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    """The path template of the route that served *scope*, or :data:`UNMATCHED`."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else UNMATCHED


class RequestObserver:
    """Request id, access line and HTTP metrics around every HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope)
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", ()),
                    (REQUEST_ID_HEADER.encode(), rid.encode()),
                ]
            await send(message)

        with logs.bound(request_id=rid):
            try:
                await self.app(scope, receive, send_with_id)
            except Exception:
                if status:
                    raise  # the answer has begun: nothing else can be sent
                await internal_error(rid)(scope, receive, send_with_id)
            finally:
                seconds = time.perf_counter() - started
                route = route_template(scope)
                metrics.http_request(scope["method"], route, status or 500, seconds)
                logger.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "route": route,
                        "status": status or 500,
                        "duration_ms": round(seconds * 1000, 1),
                    },
                )
