"""The caps of the strict JSON loader (service/adapters/strict_json.py; reliability.md
section 5): array items, string bytes, number characters and depth, each a setting."""

from __future__ import annotations

import pytest

from service.adapters.strict_json import JsonLimits, loads
from service.domain.errors import TooCostly

SMALL = JsonLimits(max_depth=3, max_array_items=3, max_string_bytes=8, max_number_chars=4)


@pytest.mark.parametrize(
    "document",
    [
        b"[1, 2, 3]",
        b'{"a": 1, "b": 2, "c": 3, "d": 4}',  # members of an object are not array items
        b"[[1, 2, 3], [4, 5, 6], [7, 8, 9]]",  # each array on its own
        b'["a,b,c,d"]',  # commas inside a string
        b'["12345678", "\\"\\"\\"\\""]',  # 8 bytes as written
        b"[1234, -1.5]",
        b"[[[]]]",
    ],
)
def test_within_the_limits_a_document_loads(document: bytes) -> None:
    assert loads(document, SMALL) is not None


@pytest.mark.parametrize(
    ("document", "words"),
    [
        (b"[1, 2, 3, 4]", "array has more than 3 items"),
        (b'{"a": [[1], [1, 2, 3, 4]]}', "array has more than 3 items"),
        (b'["123456789"]', "string is longer than 8 bytes"),
        (b'{"123456789": 1}', "string is longer than 8 bytes"),
        (b"[12345]", "number has more than 4 characters"),
        (b"[[[[]]]]", "nested deeper than 3 levels"),
    ],
)
def test_past_a_limit_a_document_is_too_costly(document: bytes, words: str) -> None:
    with pytest.raises(TooCostly, match=words):
        loads(document, SMALL)


def test_the_default_limits_are_those_of_reliability_md_section_5() -> None:
    assert JsonLimits() == JsonLimits(32, 10_000, 1024 * 1024, 50)
    big_array = b"[" + b",".join([b"0"] * 10_000) + b"]"
    assert len(loads(big_array)) == 10_000
    with pytest.raises(TooCostly):
        loads(b"[" + b",".join([b"0"] * 10_001) + b"]")
    with pytest.raises(TooCostly):
        loads(b'["' + b"x" * (1024 * 1024 + 1) + b'"]')
