"""A streaming, bounded ``multipart/related`` parser (RFC 2387, RFC 2046 section 5.1.1)
for STOW-RS request bodies (PS3.18 section 10.5, Annex I).

:class:`MultipartParser` is fed the body chunk by chunk as it arrives and keeps at most
one part plus one delimiter in memory beyond the parts already complete. Every cap of
reliability.md section 5 is checked as soon as it can be passed, so a hostile body is
refused before it is read whole:

* the whole body, each part's body (:class:`SizeLimitExceeded`, a 413 at the edge);
* the number of parts, the bytes of one part's header block, the headers of one part,
  the preamble plus epilogue (:class:`CountLimitExceeded`);
* anything that is not the syntax of RFC 2046 (:class:`MultipartError`).

All are :class:`InvalidInput`: a broken envelope stores nothing (reliability.md 4).
Header folding (obsolete in RFC 5322) is refused; transport padding after a boundary
is accepted, as RFC 2046 requires, and so are boundaries longer than its 70 characters
(Orthanc 1.10's STOW-RS client sends two UUIDs, 73 characters).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum, auto
from typing import Final

from service.domain.errors import InvalidInput

_CRLF: Final = b"\r\n"
_HEADER_END: Final = b"\r\n\r\n"
_PADDING: Final = b" \t"
# RFC 2046 bchars, up to 200 rather than 70: Orthanc's STOW-RS client sends 73.
_BOUNDARY: Final = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,199}[0-9A-Za-z'()+_,\-./:=?]")
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_PARAMETER: Final = re.compile(
    r'\s*;\s*([!#$%&\'*+\-.^_`|~0-9A-Za-z]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)\s*'
)


class MultipartError(InvalidInput):
    """The body is not well-formed ``multipart/related``."""


class CountLimitExceeded(MultipartError):
    """Too many parts or headers, or too many bytes of headers, preamble or epilogue."""


class SizeLimitExceeded(MultipartError):
    """The body or one part's body is larger than allowed."""


@dataclass(frozen=True, slots=True)
class Limits:
    """The caps one request is parsed under (reliability.md section 5)."""

    request_bytes: int
    parts: int
    part_bytes: int
    header_bytes: int
    headers_per_part: int
    preamble_epilogue_bytes: int


@dataclass(frozen=True, slots=True)
class Part:
    """One body part: its headers (names lower-cased) and its content."""

    headers: dict[str, str]
    body: bytes

    @property
    def media_type(self) -> str | None:
        """The part's media type without parameters, lower-cased; None if not given."""
        value = self.headers.get("content-type")
        return media_type(value) if value is not None else None


def media_type(content_type: str) -> str:
    """``type/subtype`` of a Content-Type value, lower-cased, without parameters."""
    return content_type.split(";", 1)[0].strip().lower()


def parameters(content_type: str) -> dict[str, str]:
    """The parameters of a Content-Type value (names lower-cased, quotes removed).

    Raises :class:`MultipartError` for a parameter list that is not RFC 9110 syntax.
    """
    _, _, rest = content_type.partition(";")
    found: dict[str, str] = {}
    rest = ";" + rest if rest.strip() else ""
    position = 0
    while position < len(rest):
        match = _PARAMETER.match(rest, position)
        if match is None or match.end() == position:
            raise MultipartError(f"malformed Content-Type parameters: {content_type!r}")
        name, value = match.group(1).lower(), match.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        found[name] = value
        position = match.end()
    return found


def boundary_of(content_type: str) -> str:
    """The boundary parameter, checked against RFC 2046's ``boundary`` syntax."""
    boundary = parameters(content_type).get("boundary")
    if boundary is None or _BOUNDARY.fullmatch(boundary) is None:
        raise MultipartError(f"no valid boundary parameter in Content-Type {content_type[:300]!r}")
    return boundary


class _State(Enum):
    PREAMBLE = auto()
    AFTER_DELIMITER = auto()
    HEADERS = auto()
    BODY = auto()
    EPILOGUE = auto()


@dataclass
class MultipartParser:
    """Feed body chunks with :meth:`feed`; call :meth:`close` at the end of the body."""

    boundary: str
    limits: Limits
    _buffer: bytearray = field(default_factory=bytearray)
    _state: _State = _State.PREAMBLE
    _received: int = 0
    _outside: int = 0  # preamble + epilogue bytes
    _headers: dict[str, str] = field(default_factory=dict)
    _body: list[bytes] = field(default_factory=list)
    _body_size: int = 0
    _count: int = 0
    _skipped: bool = False  # some preamble bytes were consumed

    def __post_init__(self) -> None:
        self._dash = b"--" + self.boundary.encode("ascii")
        self._delimiter = _CRLF + self._dash

    def feed(self, chunk: bytes) -> list[Part]:
        """Consume *chunk*; return the parts it completed, in order."""
        self._received += len(chunk)
        if self._received > self.limits.request_bytes:
            raise SizeLimitExceeded(f"request body over {self.limits.request_bytes} bytes")
        self._buffer += chunk
        done: list[Part] = []
        while self._step(done):
            pass
        return done

    def close(self) -> None:
        """Check the body ended after the close delimiter."""
        if self._state is not _State.EPILOGUE:
            raise MultipartError("the body ends before the multipart close delimiter")

    def _step(self, done: list[Part]) -> bool:
        """Advance one state if the buffer allows; False when more bytes are needed."""
        if self._state is _State.PREAMBLE:
            return self._preamble()
        if self._state is _State.AFTER_DELIMITER:
            return self._after_delimiter()
        if self._state is _State.HEADERS:
            return self._header_block()
        if self._state is _State.BODY:
            return self._part_body(done)
        self._count_outside(len(self._buffer))
        self._buffer.clear()
        return False

    def _preamble(self) -> bool:
        # The first delimiter may open the body (no CRLF before it) or follow a preamble.
        if not self._skipped:
            if self._buffer.startswith(self._dash):
                del self._buffer[: len(self._dash)]
                self._state = _State.AFTER_DELIMITER
                return True
            if self._dash.startswith(self._buffer):
                return False
        index = self._buffer.find(self._delimiter)
        if index < 0:
            keep = len(self._delimiter) - 1
            self._count_outside(max(0, len(self._buffer) - keep))
            if len(self._buffer) > keep:
                del self._buffer[:-keep]
                self._skipped = True
            return False
        self._count_outside(index)
        del self._buffer[: index + len(self._delimiter)]
        self._state = _State.AFTER_DELIMITER
        return True

    def _after_delimiter(self) -> bool:
        if len(self._buffer) < 2:
            return False
        if self._buffer.startswith(b"--"):
            if self._count == 0:
                raise MultipartError("the multipart body has no parts")
            del self._buffer[:2]
            self._state = _State.EPILOGUE
            return True
        end = self._buffer.find(_CRLF)
        if end < 0:
            if len(self._buffer) > self.limits.header_bytes:
                raise MultipartError("no line break after a multipart boundary")
            return False
        if self._buffer[:end].strip(_PADDING):
            raise MultipartError("unexpected characters after a multipart boundary")
        del self._buffer[: end + 2]
        self._count += 1
        if self._count > self.limits.parts:
            raise CountLimitExceeded(f"more than {self.limits.parts} parts")
        self._state = _State.HEADERS
        return True

    def _header_block(self) -> bool:
        if self._buffer.startswith(_CRLF):  # a part without headers
            block = b""
            del self._buffer[:2]
        else:
            end = self._buffer.find(_HEADER_END)
            if end < 0:
                if len(self._buffer) > self.limits.header_bytes:
                    raise CountLimitExceeded(f"part headers over {self.limits.header_bytes} bytes")
                return False
            if end > self.limits.header_bytes:
                raise CountLimitExceeded(f"part headers over {self.limits.header_bytes} bytes")
            block = bytes(self._buffer[:end])
            del self._buffer[: end + len(_HEADER_END)]
        self._headers = self._parse_headers(block)
        self._state = _State.BODY
        return True

    def _parse_headers(self, block: bytes) -> dict[str, str]:
        lines = block.split(_CRLF) if block else []
        if len(lines) > self.limits.headers_per_part:
            raise CountLimitExceeded(f"more than {self.limits.headers_per_part} part headers")
        headers: dict[str, str] = {}
        for line in lines:
            name, colon, value = line.partition(b":")
            try:
                text_name, text_value = name.decode("ascii"), value.decode("latin-1")
            except UnicodeDecodeError:
                raise MultipartError("a part header name is not ASCII") from None
            if not colon or _TOKEN.fullmatch(text_name) is None:
                raise MultipartError(f"malformed part header line {line[:80]!r}")
            headers[text_name.lower()] = text_value.strip(" \t")
        return headers

    def _part_body(self, done: list[Part]) -> bool:
        index = self._buffer.find(self._delimiter)
        if index < 0:
            keep = len(self._delimiter) - 1
            if len(self._buffer) > keep:
                self._add_body(bytes(self._buffer[:-keep]))
                del self._buffer[:-keep]
            return False
        self._add_body(bytes(self._buffer[:index]))
        del self._buffer[: index + len(self._delimiter)]
        done.append(Part(self._headers, b"".join(self._body)))
        self._headers, self._body, self._body_size = {}, [], 0
        self._state = _State.AFTER_DELIMITER
        return True

    def _add_body(self, data: bytes) -> None:
        self._body_size += len(data)
        if self._body_size > self.limits.part_bytes:
            raise SizeLimitExceeded(f"a part is over {self.limits.part_bytes} bytes")
        self._body.append(data)

    def _count_outside(self, size: int) -> None:
        self._outside += size
        if self._outside > self.limits.preamble_epilogue_bytes:
            raise CountLimitExceeded(
                f"preamble and epilogue over {self.limits.preamble_epilogue_bytes} bytes"
            )


def parse(data: bytes, boundary: str, limits: Limits) -> list[Part]:
    """Every part of a complete body (the non-streaming use of :class:`MultipartParser`)."""
    parser = MultipartParser(boundary, limits)
    parts = parser.feed(data)
    parser.close()
    return parts
