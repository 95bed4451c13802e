"""The SR content tree (PS3.3 C.17.3, ContentSequence (0040,A730)) and the top-level
elements the reader reads, read from their encoded bytes for :mod:`.sr_reader` and
:mod:`.sr_context`, without building a pydicom Dataset per content item.

pydicom keeps a sequence of the top-level data set as raw bytes until it is first
read; converting it builds a Dataset and a DataElement for every element of every
item, most of the cost of reading an SR (issue 7). :func:`content_root` walks those
bytes once (PS3.5 section 7.1.2 Explicit VR Little Endian data elements, section 7.5
nesting of items with defined and undefined lengths) and keeps, per item, only the
elements the reader reads, with the values pydicom would give them (PS3.5 section 6.2
padding removed as pydicom does; FL values as a tuple). A sequence of defined length
outside the content tree (a code sequence, mostly) encoded like one already walked is
read once and its items shared: items are read, never changed. :class:`Header`
reads the top-level elements the same way, one at a time, as plain text (pydicom
gives a UID or a PersonName of that text); the items of a top-level sequence are
walked once per data set and kept on it.

Anything not handled exactly as pydicom would is left to pydicom: another transfer
syntax, a character set other than the default, ISO_IR 100 or ISO_IR 192, a non-ASCII
or multi-valued value, an unexpected VR, tags out of order, a length that overruns
its container, or unusual nesting (:func:`content_root` returns ``None``,
:meth:`Header.get` asks pydicom). The limits of reliability.md section 5 raise
:class:`TooCostly` as the pydicom walk does.
"""

from __future__ import annotations

import functools
import math
import re
import struct
from typing import Any, Final, Protocol

from pydicom import config
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement, empty_value_for_VR
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from service.domain.errors import TooCostly

Item = dict[str, Any]


class ContentItem(Protocol):
    """What the reader reads an element from: a pydicom Dataset, an :data:`Item` of
    the walk, or a :class:`Header`."""

    def get(self, key: str, default: Any = None, /) -> Any: ...

    def __contains__(self, key: str, /) -> bool: ...


MAX_CONTENT_DEPTH: Final = 32
MAX_CONTENT_ITEMS: Final = 20_000
# Any sequence nesting deeper than this is left to pydicom (content items nest about
# three sequences per content level at most in TID 1500).
_MAX_SEQUENCE_DEPTH: Final = 3 * MAX_CONTENT_DEPTH + 8
_CHARSETS: Final = frozenset({"", "ISO_IR 100", "ISO_IR 192"})
_CONTENT_SEQUENCE: Final = 0x0040A730
_SPECIFIC_CHARACTER_SET: Final = 0x00080005
_DELIMITERS: Final = 0xFFFE  # the group of item and delimitation tags
_ITEM: Final = 0xE000
_ITEM_END: Final = 0xFFFEE00D
_SEQUENCE_END: Final = 0xE0DD
_UNDEFINED: Final = 0xFFFFFFFF
# (group, element, VR, 16-bit length) of an element; (group, element, 32-bit length)
# of an item or delimiter; the 32-bit length of a long-VR element.
_ELEMENT: Final = struct.Struct("<HH2sH").unpack_from
_DELIMITER: Final = struct.Struct("<HHI").unpack_from
_LONG_LENGTH: Final = struct.Struct("<I").unpack_from
_LONG_VRS: Final = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
_SHORT_VRS: Final = frozenset(
    {
        b"AE",
        b"AS",
        b"AT",
        b"CS",
        b"DA",
        b"DS",
        b"DT",
        b"FL",
        b"FD",
        b"IS",
        b"LO",
        b"LT",
        b"PN",
        b"SH",
        b"SL",
        b"SS",
        b"ST",
        b"TM",
        b"UI",
        b"UL",
        b"US",
    }
)


def _elements(*keywords: str) -> dict[int, tuple[str, bytes]]:
    """tag -> (keyword, VR) of *keywords*, from pydicom's data dictionary."""
    tags = [tag_for_keyword(keyword) or 0 for keyword in keywords]
    return {
        tag: (keyword, dictionary_VR(tag).encode("ascii"))
        for tag, keyword in zip(tags, keywords, strict=True)
    }


# The elements read in sequence items: the content items of the reader, the
# ContentTemplateSequence and evidence sequence items of the reader and sr_context.
_READ: Final = _elements(
    "CodeValue",
    "CodingSchemeDesignator",
    "CodeMeaning",
    "LongCodeValue",
    "URNCodeValue",
    "ReferencedSOPClassUID",
    "ReferencedSOPInstanceUID",
    "ReferencedSeriesSequence",
    "ReferencedSOPSequence",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "MeasurementUnitsCodeSequence",
    "ValueType",
    "ConceptNameCodeSequence",
    "UID",
    "TextValue",
    "ConceptCodeSequence",
    "MeasuredValueSequence",
    "NumericValue",
    "ContentSequence",
    "TemplateIdentifier",
    "GraphicData",
    "GraphicType",
    "ReferencedFrameOfReferenceUID",
)
# The VRs of the top-level elements :class:`Header` reads from their bytes.
_TOP_VRS: Final = frozenset({"CS", "DA", "LO", "PN", "SH", "SQ", "TM", "UI"})
# Where the walked items of a data set's top-level sequences are kept on it:
# tag -> (the RawDataElement walked, its items).
_WALKED: Final = "_sr_fastwalk_sequences"
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
    if not _plain(dataset):
        return None
    try:
        raw, data = _encoded(dataset.get_item(_CONTENT_SEQUENCE), "SQ")
        return {"ContentSequence": _sequence(dataset, raw, data)}
    except _Unhandled:
        return None


class Header:
    """The top-level elements of *dataset* that the reader and :mod:`.sr_context` read,
    each as pydicom gives it (text as ``str``, sequence items as :data:`Item`), read
    from its encoded bytes when that is exact, else by pydicom."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.plain = _plain(dataset)

    def get(self, keyword: str, default: Any = None, /) -> Any:
        known = _top_element(keyword)
        if known is not None and self.plain:
            tag, vr = known
            element: object = self.dataset.get_item(tag)
            if element is None:
                return default
            try:
                raw, data = _encoded(element, vr)
                return _sequence(self.dataset, raw, data) if vr == "SQ" else _top_value(raw, data)
            except (_Unhandled, TooCostly):
                pass  # pydicom converts only the top-level items: no content tree limits
        return self.dataset.get(keyword, default)

    def __contains__(self, keyword: str, /) -> bool:
        return keyword in self.dataset


@functools.cache
def _top_element(keyword: str) -> tuple[int, str] | None:
    """(tag, VR) of the element *keyword* if :class:`Header` reads it from its bytes."""
    tag = tag_for_keyword(keyword)
    vr = dictionary_VR(tag) if tag is not None else ""
    return (tag, vr) if tag is not None and vr in _TOP_VRS else None


def _plain(dataset: Dataset) -> bool:
    """Whether *dataset* is Explicit VR Little Endian in a character set in which
    ASCII text decodes as ASCII."""
    meta = getattr(dataset, "file_meta", None)
    if meta is None or meta.get("TransferSyntaxUID") != ExplicitVRLittleEndian:
        return False
    return (
        dataset.get_item(_SPECIFIC_CHARACTER_SET) is None
        or str(dataset.get("SpecificCharacterSet") or "") in _CHARSETS
    )


def _encoded(element: object, vr: str) -> tuple[RawDataElement, bytes]:
    """*element* and its value when it is still encoded, Explicit VR Little Endian,
    with *vr*."""
    if (
        not isinstance(element, RawDataElement)
        or vr != element.VR
        or element.is_implicit_VR
        or not element.is_little_endian
        or not isinstance(element.value, bytes)
    ):
        raise _Unhandled
    return element, element.value


def _top_value(raw: RawDataElement, data: bytes) -> Any:
    """The value of the top-level text element *raw* encoded as *data*."""
    vr = str(raw.VR)
    if raw.length == 0:
        return empty_value_for_VR(vr)
    if (vr in ("DA", "TM") and config.datetime_conversion) or (vr == "PN" and b"=" in data):
        raise _Unhandled  # a PersonName of several groups does not print as its text
    return _value(vr.encode("ascii"), data)


def _sequence(dataset: Dataset, raw: RawDataElement, data: bytes) -> list[Item]:
    """The items of the top-level sequence *raw* of *dataset*, encoded as *data*,
    walked once."""
    walked: dict[int, tuple[RawDataElement, list[Item]]] = vars(dataset).setdefault(_WALKED, {})
    known = walked.get(raw.tag)
    if known is not None and known[0] is raw:
        return known[1]
    walk = _Walk(data)
    content = raw.tag == _CONTENT_SEQUENCE
    items = walk.sequence(0, len(data), raw.length == _UNDEFINED, 1, 1 if content else -1)[0]
    if content:
        walk.count(len(items), 0)
    walked[raw.tag] = (raw, items)
    return items


class _Walk:
    """One walk over the encoded sequence value *data*."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.content_items = 0
        # Sequences of defined length outside the content tree, by depth and bytes.
        self.shared: dict[tuple[int, bytes], list[Item]] = {}

    def sequence(
        self, at: int, end: int, undefined: bool, depth: int, content_depth: int
    ) -> tuple[list[Item], int]:
        """The items of a sequence value from *at*, and the offset after it;
        *content_depth* is -1 outside the content tree."""
        if depth > _MAX_SEQUENCE_DEPTH:
            raise _Unhandled
        data = self.data
        items: list[Item] = []
        while at < end:
            if at + 8 > end:
                raise _Unhandled
            group, element, length = _DELIMITER(data, at)
            start = at + 8
            if group != _DELIMITERS:
                raise _Unhandled
            if element == _SEQUENCE_END and undefined:
                if length != 0:
                    raise _Unhandled
                return items, start
            if element != _ITEM:
                raise _Unhandled
            if length == _UNDEFINED:
                item, at = self.item(start, end, True, depth, content_depth)
            else:
                at = start + length
                if at > end:
                    raise _Unhandled
                item = self.item(start, at, False, depth, content_depth)[0]
            items.append(item)
        if undefined and depth > 1:
            raise _Unhandled  # a nested undefined-length sequence without its end
        return items, at

    def item(
        self, at: int, end: int, undefined: bool, depth: int, content_depth: int
    ) -> tuple[Item, int]:
        """The read elements of one item from *at*, and the offset after it."""
        data = self.data
        found: Item = {}
        previous = -1
        while at < end:
            if at + 8 > end:
                raise _Unhandled
            group, element, vr, length = _ELEMENT(data, at)
            tag = group << 16 | element
            if group == _DELIMITERS:
                if tag == _ITEM_END and undefined and vr == b"\0\0" and length == 0:
                    return found, at + 8
                raise _Unhandled
            if tag <= previous or tag == _SPECIFIC_CHARACTER_SET:
                raise _Unhandled
            previous = tag
            if vr in _SHORT_VRS:
                start = at + 8
            elif vr in _LONG_VRS and length == 0 and at + 12 <= end:
                (length,) = _LONG_LENGTH(data, at + 8)
                start = at + 12
            else:
                raise _Unhandled
            read = _READ.get(tag)
            if read is not None and read[1] != vr:
                raise _Unhandled
            if vr == b"SQ":
                items, at = self.nested(tag, start, length, end, depth, content_depth)
                if read is not None:
                    found[read[0]] = items
                continue
            at = start + length
            if length == _UNDEFINED or at > end:
                raise _Unhandled
            if read is not None:
                found[read[0]] = _value(vr, data[start:at])
        if undefined:
            raise _Unhandled
        return found, at

    def nested(
        self, tag: int, start: int, length: int, end: int, depth: int, content_depth: int
    ) -> tuple[list[Item], int]:
        """The items of the sequence value of *length* from *start* inside an item
        ending at *end*, and the offset after it."""
        in_tree = tag == _CONTENT_SEQUENCE and content_depth >= 0
        undefined = length == _UNDEFINED
        value_end = end if undefined else start + length
        if value_end > end:
            raise _Unhandled
        if not (in_tree or undefined):  # not counted: walked once
            key = (depth, self.data[start:value_end])
            shared = self.shared.get(key)
            if shared is None:
                shared = self.shared[key] = self.sequence(start, value_end, False, depth + 1, -1)[0]
            return shared, value_end
        items, at = self.sequence(
            start, value_end, undefined, depth + 1, content_depth + 1 if in_tree else -1
        )
        if not undefined and at != value_end:
            raise _Unhandled
        if in_tree and items:
            self.count(len(items), content_depth)
        return items, at

    def count(self, children: int, content_depth: int) -> None:
        """Apply the limits of the pydicom walk to *children* items under an item at
        *content_depth* (the root is at 0)."""
        if content_depth >= MAX_CONTENT_DEPTH:
            raise TooCostly(f"the SR content tree is deeper than {MAX_CONTENT_DEPTH} levels")
        self.content_items += children
        if self.content_items > MAX_CONTENT_ITEMS:
            raise TooCostly(f"the SR has more than {MAX_CONTENT_ITEMS} content items")


def _value(vr: bytes, raw: bytes) -> str | tuple[float, ...] | None:
    """The value pydicom gives an element of *vr* encoded as *raw* (ASCII only); FL
    values as a tuple (pydicom gives a float for one value, a list for more)."""
    if vr == b"FL":
        if len(raw) % 4:
            raise _Unhandled  # pydicom raises BytesLengthException
        return struct.unpack(f"<{len(raw) // 4}f", raw)
    if vr == b"UT":
        return _text(raw.rstrip(b"\0 "), _PLAIN_TEXT)
    if vr == b"UR":  # pydicom strips whitespace only
        return _text(raw, _PLAIN).rstrip()
    text = _text(raw.rstrip(b"\0 "), _PLAIN)
    if vr != b"DS":
        return text
    number = raw.decode("ascii").strip()
    if not number:
        return None
    if _DS.fullmatch(number) is None or len(number) > 16 or not math.isfinite(float(number)):
        raise _Unhandled
    return number


def _text(raw: bytes, pattern: re.Pattern[bytes]) -> str:
    """*raw* as text if *pattern* matches it whole (printable ASCII without a
    backslash, the usual value, is checked without the pattern)."""
    if raw.isascii():
        text = raw.decode("ascii")
        if text.isprintable() and "\\" not in text:
            return text
    if pattern.fullmatch(raw) is None:
        raise _Unhandled
    return raw.decode("ascii")
