"""Byte-level mutation fuzzing of the SR reader (reliability.md sections 3 and 7).

Seeds are real SRs: the highdicom and dcmjs files of ``tests/data/sr``, the examples,
and :func:`tests.sr_factory.make_sr` reports. Mutants flip, insert and delete bytes,
truncate, and overwrite element length fields with boundary values. Whatever the
bytes, ``parse_dicom`` + ``read_sr`` either read a report or raise a
:class:`~service.domain.errors.DomainError`, within the time bound.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from pathlib import Path

from hypothesis import strategies as st

from service.adapters.sr_reader import parse_dicom, read_sr
from service.domain.errors import DomainError
from tests.fuzz.tiers import bounded_time, tiers
from tests.sr_factory import LesionSpec, make_sr, sr_bytes

ROOT = Path(__file__).resolve().parents[2]
SEEDS = [
    *(path.read_bytes() for path in sorted((ROOT / "tests" / "data" / "sr").glob("*.dcm"))),
    *(path.read_bytes() for path in sorted((ROOT / "examples").glob("*.dcm"))),
    sr_bytes(
        make_sr(
            patient_id="FUZZ",
            study_date="20240105",
            lesions=[
                LesionSpec("T1", 21, 12, role="target", mean_hu=40),
                LesionSpec("N1", role="non-target", state="ABSENT"),
            ],
        )
    ),
]
# Explicit VR element headers (PS3.5 7.1.2): 4-byte lengths after these VRs, else 2.
_LONG_VR = re.compile(rb"(?=(?:OB|OW|OF|SQ|UN|UT|UC|UR)\x00\x00)")
_SHORT_VR = re.compile(rb"(?=(?:AE|AS|CS|DA|DS|DT|IS|LO|LT|PN|SH|ST|TM|UI|US|UL|SS|SL|FD|FL))")
LENGTH_FIELDS = [
    [(m.start() + 4, 4) for m in _LONG_VR.finditer(seed)]
    + [(m.start() + 2, 2) for m in _SHORT_VR.finditer(seed)]
    for seed in SEEDS
]
BOUNDARY_LENGTHS = (0, 1, 2, 3, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFE, 0xFFFFFFFF)


@st.composite
def mutants(draw: st.DrawFn) -> bytes:
    """A seed with one to eight byte-level mutations."""
    index = draw(st.integers(0, len(SEEDS) - 1))
    data = bytearray(SEEDS[index])
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        operation = draw(st.sampled_from(("flip", "insert", "delete", "truncate", "length")))
        if operation == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif operation == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif operation == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        elif operation == "truncate":
            del data[at:]
        elif operation == "length" and LENGTH_FIELDS[index]:
            offset, size = draw(st.sampled_from(LENGTH_FIELDS[index]))
            value = draw(st.sampled_from(BOUNDARY_LENGTHS)) & (0xFFFFFFFF >> (32 - 8 * size))
            data[offset : offset + size] = value.to_bytes(size, "little")
    return bytes(data)


def read_or_refuse(data: bytes) -> None:
    """The property: a report, or a domain error, in bounded time.

    pydicom's UserWarnings on out-of-spec values are warnings in production, not
    errors (the suite turns warnings into errors), so they are ignored here.
    """
    with bounded_time(f"{len(data)} bytes"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.suppress(DomainError):
            read_sr(parse_dicom(data))


def _mutant_property(data: bytes) -> None:
    read_or_refuse(data)


test_sr_mutants, test_sr_mutants_long = tiers(_mutant_property, 300, 10_000, data=mutants())


def test_every_seed_is_read() -> None:
    """The seeds themselves are good reports (so mutants start from real content)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        readable = [seed for seed in SEEDS[:-1] if _reads(seed)]
    assert len(readable) >= 3
    assert read_sr(parse_dicom(SEEDS[-1])).lesions


def _reads(data: bytes) -> bool:
    try:
        read_sr(parse_dicom(data))
    except DomainError:
        return False
    return True
