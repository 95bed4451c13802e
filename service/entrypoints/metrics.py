"""Prometheus metrics of this process (README "Observability"), served at ``GET /metrics``.

Every label has a small, fixed set of values: a route *template* (never the path, which may
hold a patient id), a method, a status, a channel, a criterion, a response category, a
refusal class. Nothing from a request's content becomes a label (reliability.md 3, "PHI
in logs": metrics labels are swept too). Counters are per process.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from prometheus_client import Counter, Histogram

from service.domain.errors import DomainError
from service.entrypoints.api.errors import HttpProblem, domain_outcome
from service.entrypoints.sr_instance import InstanceRefused
from service.services import Tally

CHANNELS: Final = ("assessments-http", "stow-rs", "c-store", "fhir")

HTTP_REQUESTS: Final = Counter(
    "tr_http_requests", "HTTP requests answered", ["method", "route", "status"]
)
HTTP_LATENCY: Final = Histogram(
    "tr_http_request_duration_seconds",
    "time from the request's start to the end of its answer",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
INGESTS: Final = Counter(
    "tr_ingests",
    "reports received, by channel and outcome (stored, re-delivery, refused); a refusal "
    "has its class in reason",
    ["channel", "outcome", "reason"],
)
VERDICTS: Final = Counter(
    "tr_verdicts",
    "timepoint results that were new or changed, by criterion and overall response",
    ["criterion", "response"],
)
DIMSE_ASSOCIATIONS: Final = Counter(
    "tr_dimse_associations",
    "DIMSE associations by outcome: accepted or rejected, then released or aborted",
    ["outcome"],
)


def http_request(method: str, route: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_LATENCY.labels(method, route).observe(seconds)


def ingested(channel: str, tally: Tally) -> None:
    """Count what one ingest stored (:class:`service.services.Tally`)."""
    if tally.new:
        INGESTS.labels(channel, "stored", "").inc(tally.new)
    if tally.redelivered:
        INGESTS.labels(channel, "re-delivery", "").inc(tally.redelivered)
    for criterion, response in tally.verdicts:
        VERDICTS.labels(criterion, response).inc()


def refused(channel: str, reason: str) -> None:
    """Count one refused ingest; *reason* is a class name (an OperationOutcome code, a
    DICOM condition), never a message."""
    INGESTS.labels(channel, "refused", reason).inc()


@contextmanager
def ingest(channel: str) -> Iterator[Tally]:
    """Count the ingest done in the block: its tally when it ends, a refusal (by error
    class) when it raises."""
    tally = Tally()
    try:
        yield tally
    except Exception as exc:
        refused(channel, reason_class(exc))
        raise
    ingested(channel, tally)


def reason_class(exc: Exception) -> str:
    """The refusal class of *exc*: a DICOM condition (``limit``, ``content``...) or an
    OperationOutcome code (``too-long``, ``structure``...); ``exception`` for the rest."""
    if isinstance(exc, InstanceRefused):
        return exc.condition.name.lower()
    if isinstance(exc, HttpProblem):
        return exc.code
    if isinstance(exc, DomainError):
        code: str = domain_outcome(exc)[1]["issue"][0]["code"]
        return code
    return "exception"
