"""A strict JSON loader for FHIR bodies (reliability.md sections 3-5; FHIR R4 json.html).

FHIR JSON is RFC 8259 JSON with stricter rules the standard library does not apply:

* no ``NaN`` / ``Infinity`` (the FHIR ``decimal`` grammar has no such values);
* no duplicate member names (json.html: "a property SHALL NOT appear more than once");
* the caps of :class:`JsonLimits` (reliability.md section 5; ``TR_JSON_*`` settings):
  nesting depth, checked by a pre-scan before parsing, so a megabyte of ``[`` costs a few
  passes in C and never a deep recursion; items per array and bytes per
  string (as written, escapes included), checked by a scan that runs only when the
  document is big enough to break them (more commas than the array cap, more bytes than
  the string cap), so the usual small body pays nothing; characters per number;
* UTF-8 only.

Numbers with a fraction or exponent become :class:`~decimal.Decimal` (criteria.md
section 2: no binary floats), integers stay :class:`int`.
"""

from __future__ import annotations

import json
import operator
import re
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from itertools import accumulate, count
from typing import Any, Final

from service.domain.errors import InvalidInput, TooCostly

MIB: Final = 1024 * 1024

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # unrolled: no per-byte branch
# Brackets outside strings as 2 (opening) or 0 (closing): the depth after the k-th
# bracket is the sum of the first k values minus k.
_OPENINGS, _CLOSINGS = b"[{", b"]}"
_DEPTH_STEPS = bytes.maketrans(_OPENINGS + _CLOSINGS, b"\x02\x02\x00\x00")
_NOT_QUOTES_OR_BRACKETS = bytes(
    byte for byte in range(256) if byte not in b'"' + _OPENINGS + _CLOSINGS
)
_TOKEN = re.compile(_STRING.pattern + rb"|[\[\]{},]", re.DOTALL)
_OPENING = frozenset(_OPENINGS)
_ARRAY = ord("[")


@dataclass(frozen=True, slots=True)
class JsonLimits:
    """What one document may hold (reliability.md section 5)."""

    max_depth: int = 32
    max_array_items: int = 10_000
    max_string_bytes: int = MIB
    max_number_chars: int = 50


DEFAULT_LIMITS: Final = JsonLimits()


class MalformedJson(InvalidInput):
    """Not JSON, or JSON that FHIR forbids (NaN, Infinity, duplicate keys, not UTF-8)."""


def loads(data: bytes, limits: JsonLimits = DEFAULT_LIMITS) -> Any:
    """Parse *data* with the rules above; raise :class:`MalformedJson` or
    :class:`TooCostly`."""
    check_depth(data, limits.max_depth)
    if data.count(b",") >= limits.max_array_items or len(data) > limits.max_string_bytes:
        check_sizes(data, limits)
    number = partial(_number_text, limits.max_number_chars)
    try:
        text = data.decode("utf-8")
        return json.loads(
            text,
            object_pairs_hook=_object,
            parse_float=lambda text: Decimal(number(text)),
            parse_int=lambda text: int(number(text)),
            parse_constant=_constant,
        )
    except UnicodeDecodeError as exc:
        raise MalformedJson(f"the body is not UTF-8: {exc.reason}") from None
    except json.JSONDecodeError as exc:
        raise MalformedJson(f"invalid JSON: {exc.msg} at line {exc.lineno}") from None


def check_depth(data: bytes, max_depth: int = DEFAULT_LIMITS.max_depth) -> None:
    """Raise :class:`TooCostly` when arrays and objects nest deeper than *max_depth*."""
    steps = _brackets_outside_strings(data).translate(_DEPTH_STEPS)
    if steps.count(2) <= max_depth:
        return
    # All in C iterators, stopping at the first bracket too deep (a megabyte of "[" is
    # rejected after max_depth + 1 of them).
    depths = map(operator.sub, accumulate(steps), count(1))
    if next(filter(partial(operator.lt, max_depth), depths), None) is not None:
        raise TooCostly(f"JSON nested deeper than {max_depth} levels")


def _brackets_outside_strings(data: bytes) -> bytes:
    """The brackets of *data* that lie outside its strings (as :data:`_STRING` finds
    them), in order; those after a quote left open count as outside.

    Only quotes and brackets are kept before the strings are cut out, so the pieces
    between quotes are mostly empty or one bracket (objects shared by all), and they are
    joined as text: ``bytes.join`` takes an 80-byte buffer view of each piece. A 670 KB
    Bundle's check held 1.6 MB at its peak instead of 4.9 MB (issue 7, memory)."""
    if b"\\" in data:
        # An escaped backslash or quote never ends a string: both become plain bytes (a
        # run of backslashes pairs up from its start, as JSON reads its escapes). Outside
        # a string a backslash is an error where the parser stops.
        data = data.replace(b"\\\\", b"__").replace(b'\\"', b"__")
    pieces = data.translate(None, _NOT_QUOTES_OR_BRACKETS).decode("ascii").split('"')
    outside = pieces[::2]
    if len(pieces) % 2 == 0:  # an odd number of quotes: the last one opens no string
        outside.append(pieces[-1])
    return "".join(outside).encode("ascii")


def check_sizes(data: bytes, limits: JsonLimits = DEFAULT_LIMITS) -> None:
    """Raise :class:`TooCostly` when an array has more than ``max_array_items`` items or
    a string more than ``max_string_bytes`` bytes (one pass; depth already bounded)."""
    counts: list[int] = []  # per open container: commas seen, or -1 for an object
    for match in _TOKEN.finditer(data):
        token = match.group()
        first = token[0]
        if first == 0x22:  # '"'
            if len(token) - 2 > limits.max_string_bytes:
                raise TooCostly(f"a JSON string is longer than {limits.max_string_bytes} bytes")
        elif first == 0x2C:  # ','
            if counts and counts[-1] >= 0:
                counts[-1] += 1
                if counts[-1] >= limits.max_array_items:
                    raise TooCostly(f"a JSON array has more than {limits.max_array_items} items")
        elif first in _OPENING:
            counts.append(0 if first == _ARRAY else -1)
        elif counts:
            counts.pop()


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise MalformedJson(f"duplicate JSON member name {key!r}")
            seen.add(key)
    return found


def _number_text(max_chars: int, text: str) -> str:
    if len(text) > max_chars:
        raise TooCostly(f"a JSON number has more than {max_chars} characters")
    return text


def _constant(name: str) -> Any:
    raise MalformedJson(f"{name} is not a FHIR number")
