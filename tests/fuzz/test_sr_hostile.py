"""Structural hostile SRs (reliability.md R1, R2 and sections 5-6): a deflate bomb,
deep nesting, too many content items, absurd numbers and hostile UIDs and strings.

Each is refused with a domain error by the reader, in bounded time and memory, and
through ``POST /assessments`` with an OperationOutcome and nothing stored.
"""

from __future__ import annotations

import tracemalloc
from typing import Any

import httpx
import pytest

from service.adapters.sr_reader import (
    MAX_CONTENT_DEPTH,
    MAX_CONTENT_ITEMS,
    MAX_INFLATED_BYTES,
    parse_dicom,
    read_sr,
)
from service.config import Settings
from service.domain.errors import DomainError, InvalidInput, TooCostly
from tests.fuzz.checks import ALLOWED_CODES, stored_rows
from tests.fuzz.dicom_bytes import (
    deflated,
    flat_content,
    nested_content,
    with_content,
    zeros_element,
)
from tests.fuzz.hostile import report, with_attribute, with_value
from tests.fuzz.tiers import bounded_time

DICOM = {"Content-Type": "application/dicom"}
BOMB_BYTES = 256 * 1024 * 1024


def read(data: bytes) -> None:
    read_sr(parse_dicom(data))


def test_a_deflated_sr_under_the_cap_is_read() -> None:
    data = deflated(report(), zeros_element(1 << 20))
    assert read_sr(parse_dicom(data)).lesions


def test_a_deflate_bomb_is_refused_with_bounded_memory() -> None:
    bomb = deflated(report(), zeros_element(BOMB_BYTES))
    assert len(bomb) < BOMB_BYTES // 500  # R1: about 1 000:1
    tracemalloc.start()
    try:
        with bounded_time("the deflate bomb"), pytest.raises(TooCostly, match="inflates beyond"):
            parse_dicom(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MAX_INFLATED_BYTES // 2, f"peak {peak} bytes"


@pytest.mark.parametrize("depth", [MAX_CONTENT_DEPTH + 1, 1_000])
def test_deep_nesting_is_too_costly(depth: int) -> None:
    data = with_content(report(), nested_content(depth))
    with bounded_time(f"depth {depth}"), pytest.raises(TooCostly, match="nested|deeper"):
        read(data)


def test_nesting_at_the_cap_is_not_refused_for_depth() -> None:
    with pytest.raises(DomainError) as refused:
        read(with_content(report(), nested_content(MAX_CONTENT_DEPTH)))
    assert not isinstance(refused.value, TooCostly)  # refused for content, not depth


def test_too_many_content_items_are_too_costly() -> None:
    """pydicom itself takes about 1 s to parse 20 000 items; the walk adds nothing."""
    data = with_content(report(), flat_content(MAX_CONTENT_ITEMS + 1))
    with bounded_time("20 001 items", seconds=4), pytest.raises(TooCostly, match="content items"):
        read(data)


ABSURD = ["NaN", "Infinity", "-Infinity", "-5", "1e308", "1e400"]
HOSTILE_STRINGS = [
    ("SOPInstanceUID", "1." * 5_000 + "1"),
    ("SOPInstanceUID", "../../etc/passwd"),
    ("SOPInstanceUID", "1.2.\u00e9.3"),
    ("SOPInstanceUID", "1.2.3\x00\x07"),
    ("PatientID", "P" * 70_000),
    ("PatientID", "\x1b[31mP\x00"),
    ("PatientID", ""),
    ("StudyDate", "20241399"),
    ("StudyDate", "\u00e9\u00e9\u00e9"),
]


@pytest.mark.filterwarnings("ignore:Invalid value for VR:UserWarning")
@pytest.mark.parametrize("value", ABSURD)
def test_absurd_numbers_are_refused_by_the_reader(value: str) -> None:
    with pytest.raises(InvalidInput):
        read(with_value(value))


@pytest.mark.anyio
@pytest.mark.filterwarnings("ignore:Invalid value for VR:UserWarning")
@pytest.mark.filterwarnings("ignore:The value length:UserWarning")
@pytest.mark.filterwarnings("ignore:Found unknown escape sequence:UserWarning")
@pytest.mark.parametrize(
    "body",
    [
        pytest.param(lambda v=value: with_value(v), id=f"value-{value}")
        for value in ("NaN", "-Infinity", "-5", "1e308")
    ]
    + [
        pytest.param(lambda k=keyword, v=value: with_attribute(k, v), id=f"{keyword}-{n}")
        for n, (keyword, value) in enumerate(HOSTILE_STRINGS)
    ]
    + [
        pytest.param(lambda: with_content(report(), nested_content(1_000)), id="depth-1000"),
        pytest.param(lambda: deflated(report(), zeros_element(64 << 20)), id="bomb-64MiB"),
    ],
)
async def test_hostile_srs_are_refused_through_the_api_and_nothing_is_stored(
    client: httpx.AsyncClient, settings: Settings, body: Any
) -> None:
    response = await client.post("/assessments", content=body(), headers=DICOM)
    assert 400 <= response.status_code < 500, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] in ALLOWED_CODES, outcome
    assert stored_rows(settings) == 0
