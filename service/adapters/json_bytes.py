"""orjson's output, right-sized for keeping, and compressed for a column.

orjson (3.12 on) returns its output buffer over-allocated to a power of two of at least
4 KiB and never shrinks it: every small document kept (an index row's body, a checkpoint
line, a reference to rewrite) holds 4 KiB or more while ``len`` says a few hundred bytes
(tracemalloc: 1,000 outputs of 20 bytes kept 4.1 MB; a 999-entry Bundle's ~4,000 of them
~16 MB). Home Assistant trims the same way (home-assistant/core PRs 181240, 181522).

A document's lesions and a patient's checkpoint are kept compressed (:func:`compress`):
JSON of UIDs, codes and decimals takes a fifth to a tenth of its size, and a commit
writes that many fewer pages (issue 7).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any, Final

import orjson

COMPRESSION_LEVEL: Final = 1  # zlib's fastest: 10.5 x on a checkpoint, 12 x at level 6


def dumps(
    value: Any, default: Callable[[Any], Any] | None = None, option: int | None = None
) -> bytes:
    """``orjson.dumps``, copied into a buffer of its own length."""
    return bytes(memoryview(orjson.dumps(value, default=default, option=option)))


def compress(data: bytes) -> bytes:
    """*data* as a column keeps it (zlib; :func:`column_json` reads it back)."""
    return zlib.compress(data, COMPRESSION_LEVEL)


def column_json(column: bytes) -> bytes:
    """The JSON a column keeps: :func:`compress`'s, or written before as it is (an object
    or an array; zlib's output never starts so). Raises ValueError when it does not
    inflate."""
    if column.startswith((b"{", b"[")):
        return column
    try:
        return zlib.decompress(column)
    except zlib.error as exc:
        raise ValueError(f"a column that does not inflate: {exc}") from exc
