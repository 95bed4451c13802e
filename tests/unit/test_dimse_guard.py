"""The DIMSE byte meter (service/entrypoints/dimse_guard.py) over PDUs encoded by
pynetdicom, fed in chunks of every size: budgets hold wherever a read splits the stream
(reliability.md section 5)."""

from __future__ import annotations

from typing import Any

import pytest
from pynetdicom.pdu import A_ABORT_RQ, A_RELEASE_RQ, P_DATA_TF
from pynetdicom.pdu_primitives import P_DATA

from service.entrypoints.dimse_guard import Overrun, PduMeter, a_abort

COMMAND, COMMAND_LAST, DATA, DATA_LAST = 0x01, 0x03, 0x00, 0x02
CHUNKS = (1, 5, 6, 7, 64, 4096)


def p_data(*fragments: tuple[int, bytes]) -> bytes:
    """A P-DATA-TF PDU of (message control header, bytes) fragments on context 1."""
    primitive = P_DATA()
    # pynetdicom wants [ID, PDV] lists at run time, though its annotation says tuples
    values: Any = [[1, bytes([control]) + data] for control, data in fragments]
    primitive.presentation_data_value_list = values
    pdu = P_DATA_TF()
    pdu.from_primitive(primitive)
    return bytes(pdu.encode())


def c_store(dataset_bytes: int, fragment: int) -> bytes:
    """One C-STORE message: a command, then its data set in PDUs of *fragment* bytes."""
    stream = p_data((COMMAND_LAST, b"c" * 80))
    sizes = [fragment] * (dataset_bytes // fragment) + [dataset_bytes % fragment]
    sizes = [size for size in sizes if size]
    for index, size in enumerate(sizes):
        stream += p_data((DATA_LAST if index == len(sizes) - 1 else DATA, b"d" * size))
    return stream


def feed(meter: PduMeter, stream: bytes, chunk: int) -> None:
    for at in range(0, len(stream), chunk):
        meter.feed(stream[at : at + chunk])


@pytest.mark.parametrize("chunk", CHUNKS)
def test_messages_within_the_budget_pass_and_each_starts_from_zero(chunk: int) -> None:
    meter = PduMeter(max_pdu_bytes=4096, max_dataset_bytes=10_000)
    release = bytes(A_RELEASE_RQ().encode())
    feed(meter, c_store(10_000, 4000) + c_store(10_000, 1000) + release, chunk)
    assert meter.dataset_bytes == 0


@pytest.mark.parametrize("chunk", CHUNKS)
def test_one_byte_over_the_data_set_budget_is_an_overrun(chunk: int) -> None:
    meter = PduMeter(max_pdu_bytes=4096, max_dataset_bytes=10_000)
    with pytest.raises(Overrun, match="data set of more than 10000 bytes") as raised:
        feed(meter, c_store(10_001, 4000), chunk)
    assert raised.value.reason == 0


def test_command_fragments_do_not_count() -> None:
    meter = PduMeter(max_pdu_bytes=4096, max_dataset_bytes=100)
    meter.feed(p_data((COMMAND, b"c" * 1000)) + p_data((COMMAND_LAST, b"c" * 1000)))
    assert meter.dataset_bytes == 0


@pytest.mark.parametrize("chunk", CHUNKS)
def test_a_pdu_over_the_cap_is_refused_at_its_header(chunk: int) -> None:
    meter = PduMeter(max_pdu_bytes=4096, max_dataset_bytes=10**9)
    pdu = p_data((DATA_LAST, b"d" * 4091))  # 4 + 2 + 4091 = 4097 bytes of PDU body
    with pytest.raises(Overrun, match="PDU of 4097 bytes, over 4096") as raised:
        feed(meter, pdu[:6], chunk)  # the body is never needed
    assert raised.value.reason == 6
    PduMeter(max_pdu_bytes=4097, max_dataset_bytes=10**9).feed(pdu)


def test_the_a_abort_pdu_is_one_pynetdicom_decodes() -> None:
    pdu = A_ABORT_RQ()
    pdu.decode(a_abort(6))
    assert (pdu.source, pdu.reason_diagnostic) == (2, 6)
