"""What can go wrong, in domain words. Edges translate these; the domain never knows
about HTTP, FHIR or DICOM status codes.

* DomainError
  x InvalidInput      - the data contradicts itself or the standard it claims to follow
    x TooCostly       - nesting, item counts or number lengths beyond the service's limits
    x TooLarge        - more bytes or entries than the service accepts in one request
  x UnsupportedInput  - well formed, but not something this service reads
  x NotFound          - no such patient, timepoint or report
  x Conflict          - the same identifier arrived again with different content
    x IdentityConflict - the study is already known under another patient
  x NotEvaluable      - a criterion cannot be applied to this history
  x Unavailable       - a resource the service depends on (the database) does not answer;
                        the same request can succeed later
"""

from __future__ import annotations


class DomainError(Exception):
    """Base class. Carries a human-readable message and, optionally, the field path
    (FHIRPath-like or DICOM content-item path) the message is about."""

    def __init__(self, message: str, expression: str | None = None) -> None:
        super().__init__(message)
        self.expression = expression


class InvalidInput(DomainError):
    """The input contradicts itself or the standard it claims to follow."""


class TooCostly(InvalidInput):
    """Nesting, item counts or number lengths beyond the service's limits (reliability.md 5)."""


class TooLarge(InvalidInput):
    """More bytes or entries than the service accepts in one request (reliability.md 5)."""


class UnsupportedInput(DomainError):
    """Well formed, but not something this service reads (wrong template, unit...)."""


class NotFound(DomainError):
    """No such patient, timepoint or report."""


class Conflict(DomainError):
    """The same identifier arrived again with different content."""


class IdentityConflict(Conflict):
    """The input's study is already stored under another patient; linking it would mix
    two people's images (reliability.md section 4, "identity conflict")."""


class NotEvaluable(DomainError):
    """A criterion cannot be applied to this history."""


class Unavailable(DomainError):
    """A resource the service depends on does not answer now; retrying later can succeed."""

    def __init__(self, message: str, retry_after_seconds: int = 5) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds
