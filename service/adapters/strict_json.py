"""A strict JSON loader for FHIR bodies (reliability.md sections 3-5; FHIR R4 json.html).

FHIR JSON is RFC 8259 JSON with stricter rules the standard library does not apply:

* no ``NaN`` / ``Infinity`` (the FHIR ``decimal`` grammar has no such values);
* no duplicate member names (json.html: "a property SHALL NOT appear more than once");
* nesting at most :data:`MAX_DEPTH` levels, checked by a pre-scan before parsing, so a
  megabyte of ``[`` costs one regular-expression pass and never a deep recursion;
* at most :data:`MAX_NUMBER_CHARS` characters per number;
* UTF-8 only.

Numbers with a fraction or exponent become :class:`~decimal.Decimal` (criteria.md
section 2: no binary floats), integers stay :class:`int`.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any, Final

from service.domain.errors import InvalidInput, TooCostly

MAX_DEPTH: Final = 32
MAX_NUMBER_CHARS: Final = 50

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")
_OPENING = frozenset(b"[{")


class MalformedJson(InvalidInput):
    """Not JSON, or JSON that FHIR forbids (NaN, Infinity, duplicate keys, not UTF-8)."""


def loads(data: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """Parse *data* with the rules above; raise :class:`MalformedJson` or
    :class:`TooCostly`."""
    check_depth(data, max_depth)
    try:
        text = data.decode("utf-8")
        return json.loads(
            text,
            object_pairs_hook=_object,
            parse_float=_decimal,
            parse_int=_integer,
            parse_constant=_constant,
        )
    except UnicodeDecodeError as exc:
        raise MalformedJson(f"the body is not UTF-8: {exc.reason}") from None
    except json.JSONDecodeError as exc:
        raise MalformedJson(f"invalid JSON: {exc.msg} at line {exc.lineno}") from None


def check_depth(data: bytes, max_depth: int = MAX_DEPTH) -> None:
    """Raise :class:`TooCostly` when arrays and objects nest deeper than *max_depth*."""
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub(b"", data)):
        if match.group()[0] in _OPENING:
            depth += 1
            if depth > max_depth:
                raise TooCostly(f"JSON nested deeper than {max_depth} levels")
        else:
            depth -= 1


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise MalformedJson(f"duplicate JSON member name {key!r}")
        found[key] = value
    return found


def _number_text(text: str) -> str:
    if len(text) > MAX_NUMBER_CHARS:
        raise TooCostly(f"a JSON number has more than {MAX_NUMBER_CHARS} characters")
    return text


def _decimal(text: str) -> Decimal:
    return Decimal(_number_text(text))


def _integer(text: str) -> int:
    return int(_number_text(text))


def _constant(name: str) -> Any:
    raise MalformedJson(f"{name} is not a FHIR number")
