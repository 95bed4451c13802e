"""Fuzzing of the strict JSON loader and the FHIR reader (reliability.md R4/R5, section 7).

Three generators: arbitrary JSON documents (recursive dicts, lists and scalars,
FHIR-looking keys included), structural mutants of valid measurement Bundles from
:mod:`tests.fhir_factory` (a node replaced or removed), and text mutants of their
serialization with the tokens FHIR forbids spliced in (``NaN``, ``Infinity``,
duplicate keys, deep nesting, long numbers). ``strict_json.loads`` + ``read_fhir``
raise nothing outside :class:`~service.domain.errors.DomainError`, in bounded time.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import strategies as st

from service.adapters import strict_json
from service.adapters.fhir_reader import read_fhir
from service.domain.errors import DomainError
from tests.fhir_factory import measurement_bundle
from tests.fuzz.tiers import bounded_time, tiers

SEEDS = [
    measurement_bundle("FUZZ", "2024-01-05", [("liver", 21.0), ("lung", 12.5)]),
    measurement_bundle("FUZZ", "2024-03-05", [("liver", 30.0)], bundle_type="collection"),
    measurement_bundle("FUZZ", "2024-03-05", [("liver", 3.0)], unit="cm"),
]
FHIR_KEYS = st.sampled_from(
    (
        "resourceType",
        "entry",
        "resource",
        "fullUrl",
        "subject",
        "reference",
        "focus",
        "code",
        "coding",
        "system",
        "valueQuantity",
        "value",
        "unit",
        "effectiveDateTime",
        "identifier",
        "status",
        "type",
    )
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(("Bundle", "Observation", "Patient/1", "mm", "2024-01-05", "", "NaN"))
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(FHIR_KEYS | st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=40,
)
FORBIDDEN = (
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"1e400",
    b"9" * 60,
    b'"subject": {}, ',
    b'"resourceType": "Observation", ',
    b"[" * 40,
    b"{" * 40,
    b"\xff\xfe",
    b"\\ud800",
)


def load_and_read(data: bytes) -> None:
    """The property: parsed and read, or refused with a domain error, in bounded time."""
    with bounded_time(f"{len(data)} bytes of JSON"), contextlib.suppress(DomainError):
        read_fhir(strict_json.loads(data), digest="fuzz")


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found.extend(_paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.extend(_paths(value, (*prefix, index)))
    return found


@st.composite
def bundle_mutants(draw: st.DrawFn) -> bytes:
    """A seed Bundle with one to four nodes replaced by arbitrary JSON or removed."""
    document = json.loads(json.dumps(draw(st.sampled_from(SEEDS))))
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(document)[1:]
        if not paths:  # everything removed already
            break
        path = draw(st.sampled_from(paths))
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        if draw(st.booleans()):
            parent[path[-1]] = draw(JSON_VALUES)
        elif isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent.pop(path[-1])
    return json.dumps(document).encode()


@st.composite
def text_mutants(draw: st.DrawFn) -> bytes:
    """A seed Bundle's JSON text with forbidden tokens or random bytes spliced in."""
    data = bytearray(json.dumps(draw(st.sampled_from(SEEDS))).encode())
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        cut = draw(st.integers(0, 8))
        data[at : at + cut] = draw(st.sampled_from(FORBIDDEN) | st.binary(max_size=8))
    return bytes(data)


def _json_property(document: Any) -> None:
    load_and_read(json.dumps(document).encode())


def _mutant_property(data: bytes) -> None:
    load_and_read(data)


test_generated_json, test_generated_json_long = tiers(
    _json_property, 100, 4_000, document=JSON_VALUES
)
test_bundle_mutants, test_bundle_mutants_long = tiers(
    _mutant_property, 100, 4_000, data=bundle_mutants() | text_mutants()
)


def test_the_seeds_are_read() -> None:
    for seed in SEEDS:
        assert read_fhir(strict_json.loads(json.dumps(seed).encode()), digest="seed").reports
