"""The streaming multipart/related parser: syntax (RFC 2046 5.1.1) and every cap of
reliability.md section 5, fed whole and in arbitrary chunks."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from service.adapters import multipart
from service.domain.errors import InvalidInput

BOUNDARY = "b0undary"
LIMITS = multipart.Limits(
    request_bytes=10_000,
    parts=3,
    part_bytes=1_000,
    header_bytes=200,
    headers_per_part=2,
    preamble_epilogue_bytes=100,
)


def body(
    *parts: tuple[bytes, bytes],
    preamble: bytes = b"",
    epilogue: bytes = b"",
    boundary: str = BOUNDARY,
) -> bytes:
    """A multipart body from (header block, content) pairs."""
    out = preamble + (b"\r\n" if preamble else b"")
    for headers, content in parts:
        out += f"--{boundary}\r\n".encode() + headers + b"\r\n" + content + b"\r\n"
    return out + f"--{boundary}--".encode() + epilogue


DICOM_PART = b"Content-Type: application/dicom\r\n"
TWO_PARTS = body(
    (DICOM_PART, b"first\r\n--b0undar"),  # a near-delimiter inside the content
    (b"", b"second"),
    preamble=b"ignored preamble",
    epilogue=b"\r\nignored epilogue",
)


def test_two_parts_with_preamble_epilogue_and_near_delimiter() -> None:
    parts = multipart.parse(TWO_PARTS, BOUNDARY, LIMITS)
    assert [part.body for part in parts] == [b"first\r\n--b0undar", b"second"]
    assert parts[0].headers == {"content-type": "application/dicom"}
    assert parts[0].media_type == "application/dicom"
    assert parts[1].headers == {} and parts[1].media_type is None


@given(st.lists(st.integers(min_value=1, max_value=len(TWO_PARTS)), max_size=20))
def test_any_chunking_gives_the_same_parts(cuts: list[int]) -> None:
    parser = multipart.MultipartParser(BOUNDARY, LIMITS)
    points = [0, *sorted(set(cuts)), len(TWO_PARTS)]
    parts = []
    for start, end in zip(points, points[1:], strict=False):
        parts += parser.feed(TWO_PARTS[start:end])
    parser.close()
    assert [part.body for part in parts] == [b"first\r\n--b0undar", b"second"]


def test_transport_padding_after_a_boundary_is_accepted() -> None:
    data = f"--{BOUNDARY}  \t\r\n\r\nx\r\n--{BOUNDARY}--".encode()
    assert [part.body for part in multipart.parse(data, BOUNDARY, LIMITS)] == [b"x"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (f"--{BOUNDARY}--".encode(), "no parts"),
        (f"--{BOUNDARY}\r\n\r\nx".encode(), "ends before"),
        (f"--{BOUNDARY}\r\n\r\nx\r\n--{BOUNDARY}\r\n".encode(), "ends before"),
        (b"no delimiter at all", "ends before"),
        (f"--{BOUNDARY}junk\r\n\r\nx\r\n--{BOUNDARY}--".encode(), "after a multipart boundary"),
        (f"--{BOUNDARY}\r\nno colon\r\n\r\nx\r\n--{BOUNDARY}--".encode(), "header line"),
        (f"--{BOUNDARY}\r\n bad name: x\r\n\r\nx\r\n--{BOUNDARY}--".encode(), "header line"),
    ],
)
def test_malformed_bodies(data: bytes, message: str) -> None:
    with pytest.raises(multipart.MultipartError, match=message) as caught:
        multipart.parse(data, BOUNDARY, LIMITS)
    assert not isinstance(caught.value, multipart.CountLimitExceeded | multipart.SizeLimitExceeded)
    assert isinstance(caught.value, InvalidInput)


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (body((b"", b"x" * 1_001)), multipart.SizeLimitExceeded, "part is over 1000"),
        (body(*[(b"", b"x" * 900)] * 12), multipart.SizeLimitExceeded, "request body over"),
        (body(*[(b"", b"x")] * 4), multipart.CountLimitExceeded, "more than 3 parts"),
        (body((b"A: " + b"x" * 250 + b"\r\n", b"x")), multipart.CountLimitExceeded, "200 bytes"),
        (body((b"A: 1\r\nB: 2\r\nC: 3\r\n", b"x")), multipart.CountLimitExceeded, "2 part headers"),
        (body((b"", b"x"), preamble=b"p" * 101), multipart.CountLimitExceeded, "preamble"),
        (body((b"", b"x"), epilogue=b"e" * 101), multipart.CountLimitExceeded, "epilogue"),
    ],
)
def test_caps(data: bytes, error: type[multipart.MultipartError], message: str) -> None:
    with pytest.raises(error, match=message):
        multipart.parse(data, BOUNDARY, LIMITS)


def test_unterminated_header_block_is_refused_once_over_the_cap() -> None:
    parser = multipart.MultipartParser(BOUNDARY, LIMITS)
    parser.feed(f"--{BOUNDARY}\r\n".encode())
    with pytest.raises(multipart.CountLimitExceeded):
        parser.feed(b"A" * 201)


def test_the_request_cap_holds_while_streaming() -> None:
    parser = multipart.MultipartParser(BOUNDARY, LIMITS)
    parser.feed(f"--{BOUNDARY}\r\n\r\n".encode())
    for _ in range(2):
        parser.feed(f"{'x' * 900}\r\n--{BOUNDARY}\r\n\r\n".encode())
    with pytest.raises(multipart.SizeLimitExceeded, match="request body over 10000"):
        parser.feed(b"x" * 8_500)


@pytest.mark.parametrize(
    ("content_type", "boundary"),
    [
        ('multipart/related; type="application/dicom"; boundary=abc', "abc"),
        ('Multipart/Related;boundary="a b:c";type=application/dicom', "a b:c"),
        ('multipart/related; boundary="q\\"x"', 'q"x'),
        (f"multipart/related; boundary={'u' * 73}", "u" * 73),  # Orthanc's length
    ],
)
def test_boundary_parameter(content_type: str, boundary: str) -> None:
    if '"' in boundary:
        with pytest.raises(multipart.MultipartError, match="boundary"):
            multipart.boundary_of(content_type)
    else:
        assert multipart.boundary_of(content_type) == boundary
    assert multipart.media_type(content_type) == "multipart/related"


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/related",
        "multipart/related; boundary=",
        "multipart/related; boundary",
        "x; ;",
        f"multipart/related; boundary={'u' * 201}",
    ],
)
def test_missing_or_malformed_parameters(content_type: str) -> None:
    with pytest.raises(multipart.MultipartError):
        multipart.boundary_of(content_type)


def test_parameters_are_read_case_insensitively() -> None:
    assert multipart.parameters('a/b; TYPE="application/dicom"; Boundary=x') == {
        "type": "application/dicom",
        "boundary": "x",
    }
