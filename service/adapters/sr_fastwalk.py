"""The SR content tree (PS3.3 C.17.3, ContentSequence (0040,A730)) read from its encoded
bytes, for :mod:`.sr_reader`, without building a pydicom Dataset per content item.

pydicom keeps a sequence of the top-level data set as raw bytes until it is first
read; converting it builds a Dataset and a DataElement for every element of every
item, most of the cost of reading an SR (issue 7). :func:`content_root` walks those
bytes once (PS3.5 section 7.1.2 Explicit VR Little Endian data elements, section 7.5
nesting of items with defined and undefined lengths) and keeps, per item, only the
elements the reader reads, with the values pydicom would give them (PS3.5 section 6.2
padding removed as pydicom does; FL values as a tuple).

It returns ``None``, and the reader uses pydicom, for anything it does not handle
exactly as pydicom would: another transfer syntax, a character set other than the
default, ISO_IR 100 or ISO_IR 192, a non-ASCII or multi-valued value, an unexpected
VR, tags out of order, a length that overruns its container, or unusual nesting. The
limits of reliability.md section 5 raise :class:`TooCostly` as the pydicom walk does.
"""

from __future__ import annotations

import math
import re
import struct
from typing import Any, Final

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from service.domain.errors import TooCostly

Item = dict[str, Any]

MAX_CONTENT_DEPTH: Final = 32
MAX_CONTENT_ITEMS: Final = 20_000
# Any sequence nesting deeper than this is left to pydicom (content items nest about
# three sequences per content level at most in TID 1500).
_MAX_SEQUENCE_DEPTH: Final = 3 * MAX_CONTENT_DEPTH + 8
_CHARSETS: Final = frozenset({"", "ISO_IR 100", "ISO_IR 192"})
_CONTENT_SEQUENCE: Final = 0x0040A730
_SPECIFIC_CHARACTER_SET: Final = 0x00080005
_ITEM: Final = 0xFFFEE000
_ITEM_END: Final = 0xFFFEE00D
_SEQUENCE_END: Final = 0xFFFEE0DD
_UNDEFINED: Final = 0xFFFFFFFF
_LONG_VRS: Final = frozenset(
    {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
)
_SHORT_VRS: Final = frozenset(
    {
        "AE",
        "AS",
        "AT",
        "CS",
        "DA",
        "DS",
        "DT",
        "FL",
        "FD",
        "IS",
        "LO",
        "LT",
        "PN",
        "SH",
        "SL",
        "SS",
        "ST",
        "TM",
        "UI",
        "UL",
        "US",
    }
)
# The elements the reader reads: tag -> (keyword, VR).
_READ: Final[dict[int, tuple[str, str]]] = {
    0x00080100: ("CodeValue", "SH"),
    0x00080102: ("CodingSchemeDesignator", "SH"),
    0x00080104: ("CodeMeaning", "LO"),
    0x00080119: ("LongCodeValue", "UC"),
    0x00080120: ("URNCodeValue", "UR"),
    0x00081155: ("ReferencedSOPInstanceUID", "UI"),
    0x00081199: ("ReferencedSOPSequence", "SQ"),
    0x004008EA: ("MeasurementUnitsCodeSequence", "SQ"),
    0x0040A040: ("ValueType", "CS"),
    0x0040A043: ("ConceptNameCodeSequence", "SQ"),
    0x0040A124: ("UID", "UI"),
    0x0040A160: ("TextValue", "UT"),
    0x0040A168: ("ConceptCodeSequence", "SQ"),
    0x0040A300: ("MeasuredValueSequence", "SQ"),
    0x0040A30A: ("NumericValue", "DS"),
    0x0040A730: ("ContentSequence", "SQ"),
    0x00700022: ("GraphicData", "FL"),
    0x00700023: ("GraphicType", "CS"),
    0x30060024: ("ReferencedFrameOfReferenceUID", "UI"),
}
# Printable ASCII, tab, LF, CR (any text of these decodes alike in every accepted
# character set); DS as pydicom's float() and Decimal() both read it.
_PLAIN: Final = re.compile(rb"[\x20-\x5b\x5d-\x7e\t\n\r]*")
_PLAIN_TEXT: Final = re.compile(rb"[\x20-\x7e\t\n\r]*")
_DS: Final = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


class _Unhandled(Exception):
    """A shape the walk leaves to pydicom."""


def content_root(dataset: Dataset) -> Item | None:
    """``{"ContentSequence": [...]}`` of *dataset*, each item a dict of the elements
    the reader reads; ``None`` when pydicom must read it instead."""
    meta = getattr(dataset, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    raw: object = dataset.get_item(_CONTENT_SEQUENCE)
    charset = dataset.get_item(_SPECIFIC_CHARACTER_SET)
    if syntax != ExplicitVRLittleEndian or not isinstance(raw, RawDataElement):
        return None
    if raw.is_implicit_VR or not raw.is_little_endian or raw.VR != "SQ":
        return None
    if charset is not None and str(dataset.get("SpecificCharacterSet") or "") not in _CHARSETS:
        return None
    data = raw.value
    if not isinstance(data, bytes):
        return None
    walk = _Walk(data)
    try:
        items = walk.sequence(0, len(data), raw.length == _UNDEFINED, 1, 1)[0]
        walk.count(len(items), 0)
    except _Unhandled:
        return None
    return {"ContentSequence": items}


class _Walk:
    """One walk over the encoded ContentSequence value *data*."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.content_items = 0

    def header(self, at: int, end: int) -> tuple[int, str, int, int]:
        """(tag, VR, value length, value offset) of the element at *at*."""
        data = self.data
        if at + 8 > end:
            raise _Unhandled
        tag = (data[at + 1] << 24) | (data[at] << 16) | (data[at + 3] << 8) | data[at + 2]
        if tag >> 16 == 0xFFFE:
            length = int.from_bytes(data[at + 4 : at + 8], "little")
            return tag, "", length, at + 8
        vr = data[at + 4 : at + 6].decode("latin-1")
        if vr in _SHORT_VRS:
            return tag, vr, int.from_bytes(data[at + 6 : at + 8], "little"), at + 8
        if vr not in _LONG_VRS or at + 12 > end or data[at + 6 : at + 8] != b"\0\0":
            raise _Unhandled
        return tag, vr, int.from_bytes(data[at + 8 : at + 12], "little"), at + 12

    def sequence(
        self, at: int, end: int, undefined: bool, depth: int, content_depth: int
    ) -> tuple[list[Item], int]:
        """The items of a sequence value from *at*, and the offset after it."""
        if depth > _MAX_SEQUENCE_DEPTH:
            raise _Unhandled
        items: list[Item] = []
        while at < end:
            tag, _vr, length, start = self.header(at, end)
            if tag == _SEQUENCE_END and undefined:
                if length != 0:
                    raise _Unhandled
                return items, start
            if tag != _ITEM:
                raise _Unhandled
            if length == _UNDEFINED:
                item, at = self.item(start, end, True, depth, content_depth)
            else:
                if start + length > end:
                    raise _Unhandled
                item, after = self.item(start, start + length, False, depth, content_depth)
                if after != start + length:
                    raise _Unhandled
                at = after
            items.append(item)
        if undefined and depth > 1:
            raise _Unhandled  # a nested undefined-length sequence without its end
        return items, at

    def item(
        self, at: int, end: int, undefined: bool, depth: int, content_depth: int
    ) -> tuple[Item, int]:
        """The read elements of one item from *at*, and the offset after it."""
        found: Item = {}
        previous = -1
        while at < end:
            tag, vr, length, start = self.header(at, end)
            if tag == _ITEM_END and undefined:
                if length != 0:
                    raise _Unhandled
                return found, start
            if tag <= previous or tag >> 16 == 0xFFFE or tag == _SPECIFIC_CHARACTER_SET:
                raise _Unhandled
            previous = tag
            read = _READ.get(tag)
            if read is not None and read[1] != vr:
                raise _Unhandled
            if vr == "SQ":
                in_tree = tag == _CONTENT_SEQUENCE and content_depth >= 0
                inner = content_depth + 1 if in_tree else -1
                undefined_value = length == _UNDEFINED
                value_end = end if undefined_value else start + length
                if value_end > end:
                    raise _Unhandled
                items, at = self.sequence(start, value_end, undefined_value, depth + 1, inner)
                if not undefined_value and at != value_end:
                    raise _Unhandled
                if in_tree and items:
                    self.count(len(items), content_depth)
                if read is not None:
                    found[read[0]] = items
                continue
            if length == _UNDEFINED or start + length > end:
                raise _Unhandled
            at = start + length
            if read is not None:
                found[read[0]] = _value(read[1], self.data[start:at])
        if undefined:
            raise _Unhandled
        return found, at

    def count(self, children: int, content_depth: int) -> None:
        """Apply the limits of the pydicom walk to *children* items under an item at
        *content_depth* (the root is at 0)."""
        if content_depth >= MAX_CONTENT_DEPTH:
            raise TooCostly(f"the SR content tree is deeper than {MAX_CONTENT_DEPTH} levels")
        self.content_items += children
        if self.content_items > MAX_CONTENT_ITEMS:
            raise TooCostly(f"the SR has more than {MAX_CONTENT_ITEMS} content items")


def _value(vr: str, raw: bytes) -> str | tuple[float, ...] | None:
    """The value pydicom gives an element of *vr* encoded as *raw* (ASCII only); FL
    values as a tuple (pydicom gives a float for one value, a list for more)."""
    if vr == "FL":
        if len(raw) % 4:
            raise _Unhandled  # pydicom raises BytesLengthException
        return struct.unpack(f"<{len(raw) // 4}f", raw)
    if vr == "UT":
        if _PLAIN_TEXT.fullmatch(raw.rstrip(b"\0 ")) is None:
            raise _Unhandled
        return raw.decode("ascii").rstrip("\0 ")
    if vr == "UR":  # pydicom strips whitespace only
        if _PLAIN.fullmatch(raw) is None:
            raise _Unhandled
        return raw.decode("ascii").rstrip()
    if _PLAIN.fullmatch(raw.rstrip(b"\0 ")) is None:
        raise _Unhandled
    text = raw.decode("ascii")
    if vr != "DS":
        return text.rstrip("\0 ")
    number = text.strip()
    if not number:
        return None
    if _DS.fullmatch(number) is None or len(number) > 16 or not math.isfinite(float(number)):
        raise _Unhandled
    return number
