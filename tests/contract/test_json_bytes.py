"""json_bytes: orjson's output, right-sized for keeping (issue 7, memory)."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from decimal import Decimal

import orjson

from service.adapters import json_bytes


def _kept_bytes(make: Callable[[int], bytes]) -> int:
    """The memory 1,000 outputs of *make* hold while kept."""
    tracemalloc.start()
    try:
        kept = [make(n) for n in range(1000)]
        size = tracemalloc.get_traced_memory()[0]
        assert len(kept) == 1000
        return size
    finally:
        tracemalloc.stop()


def test_the_output_is_orjsons_own() -> None:
    value = {"reference": "Observation/1", "value": Decimal("1.50")}
    assert json_bytes.dumps(value, default=str) == orjson.dumps(value, default=str)
    assert json_bytes.dumps([1], option=orjson.OPT_SORT_KEYS) == b"[1]"


def _document(n: int) -> dict[str, str]:
    return {"reference": f"Observation/{n}"}


def test_a_kept_document_holds_about_its_length() -> None:
    right_sized = _kept_bytes(lambda n: json_bytes.dumps(_document(n)))
    assert right_sized < 1000 * 200  # ~30 bytes each, with the list and the bytes headers
    assert _kept_bytes(lambda n: orjson.dumps(_document(n))) > right_sized  # what it avoids
