"""A timepoint's generated FHIR resources as one column (``timepoint_result.resources``).

A timepoint's DiagnosticReport, result Observations and BodyStructures (~22 for a
10-lesion SR) were ~22 rows of the resource index, each with its entries in three of
its indexes: a third of the pages an SR's commit wrote, and the largest share of the
writer's statements (issue 7). They are now kept in their timepoint's result row, one
column (:func:`encode`, compressed as the other columns are: :mod:`.json_bytes`), with
the ids it holds beside it in ``timepoint_result.resource_ids`` for a read by id
(:data:`ID_SEPARATOR`).

Layout: a JSON header line ``{"v": 1, "items": [[type, id, version, lastUpdated,
dated], ...]}``, then each item's body on a line of its own, in order. A body is
orjson's compact output, which never holds a raw line feed (one inside a string is
escaped), so a line is a body. *dated* says whether the resource is searched by its
timepoint's date (its effective date is that date) or is undated (a BodyStructure).

Each resource keeps its own version, as an index row does: :func:`merged` bumps a
resource's version only when its body changed (contract section 4), and keeps a
resource a re-assessment no longer writes, as the index kept its row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

import orjson

from service.adapters import json_bytes
from service.adapters.fhir_record import FhirRecord

LAYOUT: Final = 1
ID_SEPARATOR: Final = " "  # between the ids of ``timepoint_result.resource_ids``
# The types of a timepoint's generated resources (fhir_writer.timepoint_resources): the
# only ones a read or search looks for in a result row.
KEPT_TYPES: Final = frozenset({"DiagnosticReport", "Observation", "BodyStructure"})


@dataclass(frozen=True, slots=True)
class Item:
    """One resource of a timepoint as kept: its version, when it got it, its body
    (without ``meta.versionId`` / ``meta.lastUpdated``) and whether it is dated."""

    resource_type: str
    resource_id: str
    version: int
    last_updated: datetime
    body: bytes
    dated: bool

    @property
    def key(self) -> tuple[str, str]:
        return self.resource_type, self.resource_id


def encode(items: Sequence[Item]) -> bytes:
    """*items* as the column keeps them."""
    header = {
        "v": LAYOUT,
        "items": [
            [i.resource_type, i.resource_id, i.version, i.last_updated.isoformat(), i.dated]
            for i in items
        ],
    }
    return json_bytes.compress(b"\n".join([orjson.dumps(header), *(i.body for i in items)]))


def decode(column: bytes) -> list[Item]:
    """What :func:`encode` wrote; raises ValueError for anything else."""
    header_line, *bodies = json_bytes.column_json(column).split(b"\n")
    try:
        header = orjson.loads(header_line)
        if header["v"] != LAYOUT:
            raise ValueError(f"layout {header['v']!r}")
        return [
            Item(kind, resource_id, version, datetime.fromisoformat(updated), body, dated)
            for (kind, resource_id, version, updated, dated), body in zip(
                header["items"], bodies, strict=True
            )
        ]
    except (ValueError, KeyError, TypeError) as exc:  # orjson's errors are ValueErrors
        raise ValueError(f"a damaged timepoint resources column: {exc!r}") from exc


def resource_ids(items: Iterable[Item]) -> str:
    """The ``timepoint_result.resource_ids`` of *items*: each id between separators, so
    that a ``LIKE '% id %'`` matches whole ids only."""
    return ID_SEPARATOR + "".join(item.resource_id + ID_SEPARATOR for item in items)


def merged(
    stored: Sequence[Item],
    records: Sequence[tuple[FhirRecord, int | None]],
    day: date,
    now: datetime,
) -> tuple[list[Item], list[bool]]:
    """*records* (each with its wanted version, as ``Store.put_resources`` takes them) kept
    over the *stored* items of timepoint *day*: a record whose body and wanted version are
    those stored keeps its item; another gets the wanted version, else the stored one
    bumped (1 when new), stamped *now*. Stored items no record names stay, after the
    records'. Returns the items and, per record, whether its item changed.

    Raises ValueError for a record dated other than *day* (a timepoint's resources are
    searched by its date) or of a type not in :data:`KEPT_TYPES`."""
    before = {item.key: item for item in stored}
    items: list[Item] = []
    changed: list[bool] = []
    for record, version in records:
        if record.effective_date not in (None, day):
            raise ValueError(f"a resource of the timepoint {day} dated {record.effective_date}")
        if record.resource_type not in KEPT_TYPES:
            raise ValueError(f"a {record.resource_type} among a timepoint's resources")
        key = (record.resource_type, record.resource_id)
        old = before.pop(key, None)
        if old is not None and old.body == record.body and version in (None, old.version):
            items.append(old)
            changed.append(False)
            continue
        wanted = version if version is not None else (1 if old is None else old.version + 1)
        items.append(Item(*key, wanted, now, record.body, record.effective_date is not None))
        changed.append(True)
    return [*items, *before.values()], changed
