"""A patient's :class:`~service.domain.checkpoint.Checkpoint` as stored (the
``patient.checkpoint`` column): lines of JSON, with the ids of the documents it was made
from (:func:`encode` says which lines).

The domain's frozen dataclasses are written field by field (orjson's own encoding),
decimals as their exact text, dates in ISO form, enums by value, and read back by the
type annotations of their ``init`` fields; the baseline's observations are written as
a document's ``lesions`` column (:mod:`.lesion_codec`). A fold's size rules are not
data: they are found again by criterion and parameters (``checkpoint.SIZE_RULES``),
and its steps keep no observations (those only let an in-process fold be checked
against a history read again).

The column holds the lines compressed (:func:`.json_bytes.compress`): a 10-lesion
baseline's 20.9 KB take 2.0 KB, the patient row's page instead of six that each commit
rewrote (issue 7: ~90 us to compress; inflated only by a process that has not the
checkpoint in its cache). A column that is not compressed holds layout 3 or before.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import orjson

from service.adapters import json_bytes, lesion_codec
from service.domain.checkpoint import SIZE_RULES, Checkpoint
from service.domain.criteria.recist11 import Disease, Fold, NewLesions, Progress, Step
from service.domain.errors import InvalidInput
from service.domain.history import Settled
from service.domain.model import AssessmentParameters, Timepoint, TimepointResponse

VERSION = 4  # of this layout; a checkpoint of another is ignored (assessed from all reports)


@dataclass(frozen=True, slots=True)
class Stored:
    """A checkpoint as stored (*column*, its lines *data* compressed), the ids of the
    documents it was made from, and where the line of each of its parts that a later
    checkpoint may keep as it is (the baseline, each step) starts and ends in *data*, by
    the identity of the object. The objects are alive while this is, so no other object
    can take their ids."""

    column: bytes
    data: bytes
    checkpoint: Checkpoint
    documents: frozenset[int]
    lines: dict[int, tuple[int, int]]

    def line(self, part: object) -> bytes | None:
        """The stored line of *part*, if it is one of this checkpoint's."""
        found = self.lines.get(id(part))
        return None if found is None else self.data[found[0] : found[1]]


def encode(checkpoint: Checkpoint, documents: Sequence[int], read: Stored | None = None) -> Stored:
    """*checkpoint*, made from the documents of ids *documents*. Its baseline and steps
    that are the very objects of the checkpoint *read* are written as they were read
    (a resumed assessment keeps them all): appending a timepoint encodes that one only.

    Lines: a header (layout, documents, the settled history but its baseline, each
    fold's context and number of steps), the baseline, then each fold's steps."""
    settled = checkpoint.settled
    kept = read.line if read is not None else lambda _part: None
    header = {
        "version": VERSION,
        "documents": list(documents),
        "settled": {name: getattr(settled, name) for name in _SETTLED_FIELDS},
        "folds": {
            criterion: {
                "params": fold.params,
                "disease": fold.disease,
                "baseline_sum": fold.baseline_sum,
                "steps": len(fold.steps),
            }
            for criterion, fold in checkpoint.folds.items()
        },
    }
    parts: list[object] = [settled.baseline]
    lines = [_dumps(header), kept(settled.baseline) or _baseline(settled.baseline)]
    for fold in checkpoint.folds.values():
        parts.extend(fold.steps)
        lines.extend(kept(step) or _dumps(_step(step)) for step in fold.steps)
    data = b"\n".join(lines)
    return Stored(
        json_bytes.compress(data), data, checkpoint, frozenset(documents), _spans(parts, lines)
    )


def decode(column: bytes) -> Stored | None:
    """The checkpoint of :func:`encode` (its *column*); None when it was written in
    another layout or names a criterion this version does not fold. Raises ValueError
    when it is damaged (it is no source of truth: what it holds is assessed again from
    the reports)."""
    try:
        return _decode(column, json_bytes.column_json(column))
    except (ValueError, KeyError, TypeError, IndexError, InvalidInput) as exc:
        raise ValueError(f"damaged checkpoint: {exc!r}") from exc


def _decode(column: bytes, data: bytes) -> Stored | None:
    lines = data.split(b"\n")
    header = orjson.loads(lines[0])
    if header.get("version") != VERSION or not header["folds"].keys() <= SIZE_RULES.keys():
        return None
    baseline = _read_baseline(orjson.loads(lines[1]))
    parts: list[object] = [baseline]
    settled = _read(Settled)({**header["settled"], "baseline": None}, baseline=baseline)
    folds = {}
    for criterion, fold in header["folds"].items():
        params = _read(AssessmentParameters)(fold["params"])
        start, baseline_sum = len(parts) + 1, Decimal(fold["baseline_sum"])
        steps: list[Step] = []
        for line in lines[start : start + fold["steps"]]:
            before = steps[-1].after if steps else Progress(nadir=baseline_sum)
            steps.append(_read_step(orjson.loads(line), before))
        parts.extend(steps)
        folds[criterion] = Fold(
            SIZE_RULES[criterion](params),
            params,
            _read(Disease)(fold["disease"]),
            baseline_sum,
            tuple(steps),
        )
    checkpoint = Checkpoint(settled, folds)
    return Stored(column, data, checkpoint, frozenset(header["documents"]), _spans(parts, lines))


def _spans(parts: Sequence[object], lines: Sequence[bytes]) -> dict[int, tuple[int, int]]:
    """Where the line of each part starts and ends in the lines joined; the first line
    (the header) is of no part."""
    spans, start = {}, len(lines[0]) + 1
    for part, line in zip(parts, lines[1:], strict=True):
        spans[id(part)] = (start, start + len(line))
        start += len(line) + 1
    return spans


_SETTLED_FIELDS = tuple(
    field.name for field in dataclasses.fields(Settled) if field.name != "baseline"
)


def _baseline(timepoint: Timepoint) -> bytes:
    """The baseline timepoint, its observations as a document's lesions column has them."""
    return lesion_codec.dumps(
        {
            "date": timepoint.date.isoformat(),
            "preliminary": timepoint.preliminary,
            "keys": list(timepoint.observations),
            "lesions": lesion_codec.plain(timepoint.observations.values()),
        }
    )


def _read_baseline(found: dict[str, Any]) -> Timepoint:
    observations = zip(found["keys"], lesion_codec.read(found["lesions"]), strict=True)
    return Timepoint(date.fromisoformat(found["date"]), dict(observations), found["preliminary"])


def _step(step: Step) -> dict[str, Any]:
    """A step's data: not its observations (they only let an in-process fold be
    checked against a history read again), nor the progress before it (the one after
    the step before, or the baseline's)."""
    return {
        "day": step.day,
        "preliminary": step.preliminary,
        "response": step.response,
        "new": step.new,
        "after": step.after,
    }


def _read_step(found: dict[str, Any], before: Progress) -> Step:
    return Step(
        day=date.fromisoformat(found["day"]),
        preliminary=found["preliminary"],
        keys=(),
        observations=(),
        before=before,
        response=_read(TimepointResponse)(found["response"]),
        new=_read(NewLesions)(found["new"]),
        after=_read(Progress)(found["after"]),
    )


def _dumps(value: Any) -> bytes:
    """*value* as JSON: dataclasses by their fields (orjson's own), enums by value,
    dates in ISO form, decimals as their exact text, frozensets as sorted lists."""
    return json_bytes.dumps(value, default=_default)


def _default(value: object) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, frozenset):
        return sorted(member.value if isinstance(member, enum.Enum) else member for member in value)
    raise TypeError(f"{type(value).__name__} is not kept in a checkpoint")


@functools.cache
def _init_fields(cls: type) -> tuple[str, ...]:
    return tuple(field.name for field in dataclasses.fields(cls) if field.init)


@functools.cache
def _read(annotation: Any) -> Callable[..., Any]:
    """What reads the :func:`_dumps` data of a value of type *annotation*."""
    return _reader(annotation) or _as_is


def _as_is(found: Any) -> Any:
    return found


# JSON values that are read as they are: orjson gives these types.
_PLAIN = (str, int, bool, float)


@functools.cache
def _reader(annotation: Any) -> Callable[..., Any] | None:
    """:func:`_read`, or None when the data is the value (a string, a number, a list of
    strings as a tuple aside): each field costs one call less."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        (inner,) = (arg for arg in args if arg is not type(None))
        read = _reader(inner)
        return None if read is None else lambda found: None if found is None else read(found)
    if origin is tuple:
        item = _reader(args[0])
        return tuple if item is None else lambda found: tuple(map(item, found))
    if origin is frozenset:
        member = _read(args[0])
        return lambda found: frozenset(map(member, found))
    if origin is dict:
        key, value = _reader(args[0]), _reader(args[1])
        if key is None and value is None:
            return None
        key, value = key or _as_is, value or _as_is
        return lambda found: {key(k): value(v) for k, v in found.items()}
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return _dataclass_reader(annotation)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return {member.value: member for member in annotation}.__getitem__
    if annotation in _PLAIN:
        return None
    readers: dict[Any, Callable[[Any], Any]] = {Decimal: Decimal, date: date.fromisoformat}
    return readers[annotation]


def _dataclass_reader(cls: type) -> Callable[..., Any]:
    """What reads a *cls* from its fields' data; keyword arguments give fields as read."""
    hints = typing.get_type_hints(cls)
    fields = [(name, _reader(hints[name])) for name in _init_fields(cls)]

    def read(found: dict[str, Any], **given: Any) -> Any:
        values = []  # positionally: the init fields in their order
        for name, field in fields:
            if name in given:
                values.append(given[name])
            elif field is None:
                values.append(found[name])
            else:
                values.append(field(found[name]))
        return cls(*values)

    return read
