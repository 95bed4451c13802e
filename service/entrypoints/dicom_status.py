"""One SR instance in, one DICOM status out: shared by STOW-RS and C-STORE
(architecture.md 2.6; reliability.md section 4).

:func:`read_instance` checks and reads an instance (:func:`.sr_instance.read_checked`,
whose :class:`~.sr_instance.Condition` of a refusal maps to both transports' codes);
:func:`committing` stores and assesses through the same use case as ``POST /assessments``,
and raises :class:`~.sr_instance.InstanceRefused` too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

from service import services
from service.adapters import sr_reader
from service.adapters.content_digest import digest
from service.adapters.db import Store
from service.domain.errors import Conflict, DomainError, IdentityConflict, Unavailable
from service.domain.model import AssessmentParameters
from service.entrypoints import push_worker, sr_instance
from service.entrypoints.sr_instance import Condition, InstanceRefused

logger = logging.getLogger(__name__)

SUCCESS: Final = 0x0000


# Domain errors after the document was read (reader, store, criteria), by MRO.
_AFTER_READING: Final[dict[type[Exception], Condition]] = {
    IdentityConflict: Condition.IDENTITY_CONFLICT,
    Conflict: Condition.CONFLICT,
    Unavailable: Condition.RESOURCES,  # database down or locked: the SCU retries later
    DomainError: Condition.CONTENT,
}


@dataclass(frozen=True, slots=True)
class Instance:
    """One readable SR instance: its UIDs and the report read from it."""

    sop_class: str
    sop_instance: str
    inbound: services.Inbound


def condition_after_reading(exc: Exception) -> Condition:
    """The condition of an error raised once the SR was parsed (most specific class)."""
    return next(
        (_AFTER_READING[cls] for cls in type(exc).__mro__ if cls in _AFTER_READING),
        Condition.PROCESSING,
    )


def refused_like(refused: InstanceRefused, instance: Instance) -> InstanceRefused:
    """*instance* refused for the same reason as *refused*, without trying it."""
    return _refused(instance, refused.condition, str(refused), refused.retry_after_seconds)


def _refused(
    instance: Instance, condition: Condition, message: str, retry_after: int | None
) -> InstanceRefused:
    refused = InstanceRefused(condition, message)
    refused.sop_class, refused.sop_instance = instance.sop_class, instance.sop_instance
    refused.retry_after_seconds = retry_after
    return refused


def instance(data: bytes, checked: tuple[str, sr_instance.Parts]) -> Instance:
    """The instance of *data* to store, of what :func:`.sr_instance.read_checked` read."""
    sop_class, parts = checked
    return Instance(sop_class, parts[0].source.uid, inbound(data, parts))


def inbound(data: bytes, parts: sr_instance.Parts) -> services.Inbound:
    """The report of *parts* to store, with the digest of the data set of *data*.

    The digest leaves out the File Meta Information: each sender writes its own
    (implementation UID, source AE title), so the same instance re-delivered through
    another route keeps its digest (idempotency).
    """
    report, start, context = parts
    return services.Inbound(report, digest(data[start:]), dicom_context=context)


def read_instance(
    data: bytes,
    *,
    patient_system: str,
    study: str | None = None,
    max_inflated_bytes: int = sr_reader.MAX_INFLATED_BYTES,
) -> Instance:
    """Check and read one PS3.10 instance in this process, or raise
    :class:`InstanceRefused` (:func:`.sr_instance.read_checked` says how)."""
    return instance(data, sr_instance.read_checked(data, patient_system, study, max_inflated_bytes))


@contextmanager
def committing(
    instance: Instance,
    root_url: str,
    pusher: push_worker.PushWorker | None = None,
    *,
    tenant: str,
    tally: services.Tally | None = None,
) -> Iterator[Callable[[Store], None]]:
    """The unit of work storing and assessing one report of *tenant* (as ``POST
    /assessments``), for the caller to run in a transaction inside the block
    (:func:`~service.adapters.db.transaction`, or a
    :class:`~service.adapters.writer.Writer`). Once the block ends, the timepoints whose
    result changed go to *pusher* (PACS push); a domain error in the block is raised as
    the instance's :class:`InstanceRefused`.
    """
    with _refusing(instance), push_worker.collect(pusher) as changed:
        yield _attempt(instance, root_url, changed, tenant, tally)


def _attempt(
    instance: Instance,
    root_url: str,
    changed: list[services.Change],
    tenant: str,
    tally: services.Tally | None,
) -> Callable[[Store], None]:
    """The unit of work storing and assessing *instance*; each attempt starts afresh."""
    forget_earlier_attempt = services.fresh_attempt(changed, tally)

    def attempt(store: Store) -> None:
        forget_earlier_attempt()
        _assess(store, instance, root_url, changed, tenant, tally)

    return attempt


@contextmanager
def _refusing(instance: Instance) -> Iterator[None]:
    """A domain error storing *instance* as its refusal."""
    try:
        yield
    except DomainError as exc:
        # the class only: the message may quote the SOP Instance UID (reliability.md 2.9)
        logger.info("instance refused: %s", type(exc).__name__)
        retry_after = exc.retry_after_seconds if isinstance(exc, Unavailable) else None
        raise _refused(instance, condition_after_reading(exc), str(exc), retry_after) from exc


def _assess(
    store: Store,
    instance: Instance,
    root_url: str,
    changed: list[services.Change],
    tenant: str,
    tally: services.Tally | None,
) -> None:
    services.assess_reports(
        store,
        [instance.inbound],
        [],
        AssessmentParameters(),
        root_url,
        changed=changed,
        tenant=tenant,
        tally=tally,
    )
