"""Hand-encoded Explicit VR Little Endian fragments (PS3.5 7.1.2, 7.5) for the hostile
SR cases that pydicom cannot write itself (its writer recurses once per nesting level)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable

from pydicom.dataset import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian

from tests.sr_factory import sr_bytes

_ITEM = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
_ITEM_END = struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
_SEQUENCE_END = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
_CONTENT_SEQUENCE = struct.pack("<HH2sHI", 0x0040, 0xA730, b"SQ", 0, 0xFFFFFFFF)
_VALUE_TYPE = struct.pack("<HH2sH", 0x0040, 0xA040, b"CS", 10) + b"CONTAINER "


def nested_content(depth: int) -> bytes:
    """A ContentSequence of CONTAINER items nested *depth* levels, undefined lengths."""
    opening = _CONTENT_SEQUENCE + _ITEM + _VALUE_TYPE
    return opening * depth + (_ITEM_END + _SEQUENCE_END) * depth


def flat_content(count: int) -> bytes:
    """A ContentSequence of *count* CONTAINER items side by side."""
    return _CONTENT_SEQUENCE + (_ITEM + _VALUE_TYPE + _ITEM_END) * count + _SEQUENCE_END


def with_content(dataset: Dataset, content: bytes) -> bytes:
    """*dataset* written without its ContentSequence, *content* appended as the last
    element (its tag is above every other top-level element of an SR)."""
    del dataset.ContentSequence
    return sr_bytes(dataset) + content


def meta_end(data: bytes) -> int:
    """The offset of the data set after the file meta (group length, PS3.10 7.1)."""
    (length,) = struct.unpack_from("<I", data, 132 + 8)
    return 132 + 12 + int(length)


def deflated(dataset: Dataset, extra: Iterable[bytes] = ()) -> bytes:
    """*dataset* in Deflated Explicit VR Little Endian, the *extra* chunks of encoded
    elements deflated after its own elements (streamed: a bomb is never held whole)."""
    dataset.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    data = sr_bytes(dataset)
    start = meta_end(data)
    plain = zlib.decompress(data[start:], -zlib.MAX_WBITS)
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    chunks = [deflater.compress(plain), *(deflater.compress(chunk) for chunk in extra)]
    return data[:start] + b"".join(chunks) + deflater.flush()


def zeros_element(size: int, chunk: int = 1 << 20) -> Iterable[bytes]:
    """A private OB element (7FE1,1010) of *size* zeros (a multiple of *chunk*), in chunks."""
    yield struct.pack("<HH2sHI", 0x7FE1, 0x1010, b"OB", 0, size)
    for _ in range(size // chunk):
        yield bytes(chunk)
