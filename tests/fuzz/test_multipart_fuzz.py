"""Fuzzing of the streaming ``multipart/related`` parser (RFC 2046 5.1.1; reliability.md
section 5 caps).

Random bodies, random boundaries and Content-Type values, and mutants of well-formed
bodies fed in random chunks: the parser raises nothing but
:class:`~service.adapters.multipart.MultipartError`, and whatever it returns respects
every cap (part count, part size, headers per part).
"""

from __future__ import annotations

import contextlib

from hypothesis import strategies as st

from service.adapters import multipart
from tests.fuzz.tiers import bounded_time, tiers

LIMITS = multipart.Limits(
    request_bytes=20_000,
    parts=4,
    part_bytes=2_000,
    header_bytes=300,
    headers_per_part=3,
    preamble_epilogue_bytes=200,
)
BOUNDARIES = st.text(st.sampled_from("abcXYZ019'()+_,-./:=? "), min_size=1, max_size=80)
HEADER_LINES = st.sampled_from(
    (
        b"Content-Type: application/dicom\r\n",
        b"Content-Type: application/dicom; transfer-syntax=1.2.840.10008.1.2.1\r\n",
        b"Content-Length: 99999999999999\r\n",
        b"X-Long: " + b"h" * 400 + b"\r\n",
        b"no colon\r\n",
        b": empty name\r\n",
        b"\xff\xfe: \x00\r\n",
    )
)


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, str]:
    """A multipart body (well-formed or mutated) and the boundary it is parsed with."""
    boundary = draw(BOUNDARIES)
    dash = b"--" + boundary.encode()
    out = draw(st.binary(max_size=300))
    for _ in range(draw(st.integers(0, 7))):
        headers = b"".join(draw(st.lists(HEADER_LINES, max_size=5)))
        content = draw(st.binary(max_size=100) | st.just(b"c" * 2_500) | st.just(dash))
        out += b"\r\n" + dash + b"\r\n" + headers + b"\r\n" + content
    out += b"\r\n" + dash + draw(st.sampled_from((b"--", b"", b"-", b" \t--")))
    out += draw(st.binary(max_size=300))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(out)))
        out = out[:at] + draw(st.binary(max_size=8)) + out[at + draw(st.integers(0, 8)) :]
    parse_as = draw(st.just(boundary) | BOUNDARIES)
    return out, parse_as


def within_caps(parts: list[multipart.Part]) -> None:
    assert len(parts) <= LIMITS.parts
    for part in parts:
        assert len(part.body) <= LIMITS.part_bytes
        assert len(part.headers) <= LIMITS.headers_per_part


def _body_property(case: tuple[bytes, str], cuts: list[int]) -> None:
    data, boundary = case
    with bounded_time(f"{len(data)} bytes of multipart"):
        parser = multipart.MultipartParser(boundary, LIMITS)
        parts: list[multipart.Part] = []
        try:
            for start, end in zip([0, *sorted(cuts)], [*sorted(cuts), len(data)], strict=True):
                parts.extend(parser.feed(data[start:end]))
            parser.close()
        except multipart.MultipartError:
            pass
        within_caps(parts)


def _content_type_property(content_type: str) -> None:
    with contextlib.suppress(multipart.MultipartError):
        multipart.boundary_of(content_type)


test_bodies, test_bodies_long = tiers(
    _body_property, 150, 5_000, case=bodies(), cuts=st.lists(st.integers(0, 3_000), max_size=6)
)
test_content_types, test_content_types_long = tiers(
    _content_type_property,
    50,
    2_000,
    content_type=st.text(max_size=120)
    | st.builds("multipart/related; boundary={}; type={}".format, st.text(), st.text()),
)
