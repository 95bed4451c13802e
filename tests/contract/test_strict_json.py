"""The caps of the strict JSON loader (service/adapters/strict_json.py; reliability.md
section 5): array items, string bytes, number characters and depth, each a setting."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from service.adapters.strict_json import (
    _STRING,
    JsonLimits,
    MalformedJson,
    _brackets_outside_strings,
    loads,
)
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
        b'[{"a": []}, "[[[[", {"b\\"[[": ["]]]]"]}]',  # brackets in strings
        b"[[{}], [{}], [{}]]",  # many brackets, never deeper than 3
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
        (b'[[], "]]", [[{"x": 1}]]]', "nested deeper than 3 levels"),
        (b"[" * 100_000, "nested deeper than 3 levels"),  # not even closed
        (b"[[[]]] [[[[", "nested deeper than 3 levels"),  # after a first document
        (b'["x", "[[[[', "nested deeper than 3 levels"),  # after an unclosed string
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


@pytest.mark.parametrize(
    "document",
    [b'{"a": 1, "a": 1}', b'{"b": {"a": 1, "c": 2, "a": 3}}', b'[{"a": [], "b": 0, "a": {}}]'],
)
def test_a_duplicate_member_name_is_refused_with_its_name(document: bytes) -> None:
    with pytest.raises(MalformedJson, match="duplicate JSON member name 'a'"):
        loads(document)


_PLAIN = st.sampled_from([b"[", b"]", b"{", b"}", b"a", b",", b"\xc3\xa9"])
# A string's content: plain bytes, brackets and quotes or backslashes escaped.
_ESCAPED = st.sampled_from([b"\\" + byte for byte in (b'"', b"\\", b"[", b"n", b"u")])
_CONTENT = st.lists(st.one_of(_PLAIN, _ESCAPED)).map(b"".join)
_STRING_LITERAL = _CONTENT.map(lambda content: b'"' + content + b'"')


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.one_of(_PLAIN, _STRING_LITERAL)), st.none() | _CONTENT)
def test_the_depth_check_sees_the_brackets_outside_strings_as_a_json_lexer(
    tokens: list[bytes], left_open: bytes | None
) -> None:
    """The depth check's brackets (quotes and brackets kept, escapes blanked) are those
    outside what the string pattern matches, a quote left open included. (After a
    backslash outside a string the two may differ: the parser stops there.)"""
    data = b"".join(tokens) + (b"" if left_open is None else b'"' + left_open)
    expected = _STRING.sub(b"", data).translate(None, b'"\\anu,\xc3\xa9')
    assert _brackets_outside_strings(data) == expected
