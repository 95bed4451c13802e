"""Every error of the HTTP API as a FHIR OperationOutcome (architecture.md 2.6;
reliability.md section 4).

Domain errors map by class (most specific along the MRO); transport problems
found at the edge raise :class:`HttpProblem`; anything else is a 500 that shows
only a correlation id and logs the traceback (:func:`internal_error`).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.adapters.fhir_reader import InvalidValue, MissingElement
from service.adapters.fhir_writer import Resource, dumps
from service.adapters.strict_json import MalformedJson
from service.domain.errors import (
    Conflict,
    DomainError,
    IdentityConflict,
    InvalidInput,
    NotEvaluable,
    NotFound,
    TooCostly,
    TooLarge,
    Unavailable,
    UnsupportedInput,
)

logger = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"

_OUTCOMES: dict[type[DomainError], tuple[int, str]] = {
    InvalidInput: (400, "invalid"),
    UnsupportedInput: (422, "not-supported"),
    NotFound: (404, "not-found"),
    Conflict: (409, "duplicate"),
    IdentityConflict: (409, "conflict"),  # reliability.md section 4
    NotEvaluable: (422, "business-rule"),
    MalformedJson: (400, "structure"),
    TooCostly: (400, "too-costly"),
    TooLarge: (413, "too-long"),
    Unavailable: (503, "transient"),
    MissingElement: (422, "required"),
    InvalidValue: (422, "value"),
}

# HTTP statuses Starlette raises itself (unknown route, wrong method...).
_HTTP_CODES = {404: "not-found", 405: "not-supported", 406: "not-supported"}


class HttpProblem(Exception):
    """A transport-level refusal found at the edge (size, media type, ...)."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.headers = headers or {}


def operation_outcome(code: str, diagnostics: str, expression: str | None = None) -> Resource:
    issue: Resource = {"severity": "error", "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def outcome_response(
    status: int, outcome: Resource, headers: dict[str, str] | None = None
) -> Response:
    return Response(dumps(outcome), status_code=status, media_type=FHIR_JSON, headers=headers)


def domain_outcome(exc: DomainError) -> tuple[int, Resource]:
    """The HTTP status and OperationOutcome of a domain error (most specific class)."""
    status, code = next(
        (_OUTCOMES[cls] for cls in type(exc).__mro__ if cls in _OUTCOMES), (400, "processing")
    )
    return status, operation_outcome(code, str(exc), exc.expression)


def retry_after(exc: DomainError) -> dict[str, str]:
    """The ``Retry-After`` header of an :class:`Unavailable` (reliability.md section 4:
    503 + Retry-After); none for other errors."""
    if isinstance(exc, Unavailable):
        return {"Retry-After": str(exc.retry_after_seconds)}
    return {}


async def _domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return outcome_response(*domain_outcome(exc), retry_after(exc))


async def _http_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HttpProblem)
    return outcome_response(exc.status, operation_outcome(exc.code, str(exc)), exc.headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    issues = [
        {
            "severity": "error",
            "code": "invalid",
            "diagnostics": str(error.get("msg", "invalid value")),
            "expression": [".".join(str(part) for part in error.get("loc", ()))],
        }
        for error in exc.errors()
    ]
    return outcome_response(400, {"resourceType": "OperationOutcome", "issue": issues})


async def _starlette_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "processing")
    return outcome_response(
        exc.status_code, operation_outcome(code, str(exc.detail)), dict(exc.headers or {})
    )


async def refuse_nul(request: Request) -> None:
    """Refuse a NUL character in the path or the query string (400 ``invalid``): no
    identifier, id or search value holds one, and PostgreSQL text cannot store one
    (an app-wide dependency, after authorization)."""
    query = request.scope.get("query_string", b"")
    if "\x00" in request.scope["path"] or b"\x00" in query or b"%00" in query:
        raise HttpProblem(400, "invalid", "the URL contains a NUL character")


def internal_error(incident: str) -> Response:
    """The 500 answer to an exception no handler took: only the correlation id
    *incident* (the request id); the traceback goes to the log. Call it while handling
    the exception (:class:`service.entrypoints.api.observe.RequestObserver` does)."""
    logger.exception("unexpected error, incident %s", incident)
    return outcome_response(
        500, operation_outcome("exception", f"internal error; incident {incident}")
    )


def install(app: FastAPI) -> None:
    """Register every handler on *app*."""
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(HttpProblem, _http_problem)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _starlette_http)
