"""The DIMSE transport guard: byte budgets enforced while a peer's PDUs arrive
(reliability.md sections 4 and 5, "DIMSE max PDU (received) / dataset bytes per
C-STORE").

pynetdicom reads a whole PDU of whatever length its header announces, and keeps every
fragment of a data set in memory until the last one. The guard sits between the
socket and pynetdicom and meters the byte stream as it is read (PS3.8 section 9.3:
6-byte PDU headers; section 9.3.5: P-DATA-TF Presentation Data Value items, whose
Message Control Header says command or data set and last fragment). It sends an
A-ABORT and ends the connection as soon as

* a PDU header announces more than the hard PDU cap (before its body is read), or
* the data set fragments of one message add up to more than the data set budget.

pynetdicom then sees the connection closed and ends the association; the handler of
the aborted C-STORE never runs, so nothing is stored.
"""

from __future__ import annotations

import logging
import socket
import struct
import time
from socketserver import BaseRequestHandler
from typing import Any, Final

from pynetdicom.transport import RequestHandler

logger = logging.getLogger(__name__)

_PDU_HEADER: Final = 6  # type, reserved, 4-byte length (PS3.8 9.3.1)
_PDV_HEADER: Final = 6  # 4-byte item length, context ID, message control header
_P_DATA_TF: Final = 0x04
_COMMAND: Final = 0x01  # message control header bit 0: command (1) or data set (0)
_LAST: Final = 0x02  # bit 1: last fragment
# A-ABORT PDU (PS3.8 9.3.8): source 2 = service provider; reason 6 = invalid PDU
# parameter value (an over-long PDU), 0 = not specified (the data set budget).
_INVALID_PARAMETER: Final = 6
_NOT_SPECIFIED: Final = 0
_DRAIN_SECONDS: Final = 5.0
_DRAIN_CHUNK: Final = 64 * 1024


def a_abort(reason: int) -> bytes:
    """An A-ABORT PDU from the service provider with *reason*."""
    return struct.pack(">BBLBBBB", 0x07, 0, 4, 0, 0, 2, reason)


class Overrun(Exception):
    """The peer exceeded a budget; :attr:`reason` is the A-ABORT reason."""

    def __init__(self, message: str, reason: int) -> None:
        super().__init__(message)
        self.reason = reason


class PduMeter:
    """Meters a received DIMSE byte stream, in chunks of any size."""

    def __init__(self, max_pdu_bytes: int, max_dataset_bytes: int) -> None:
        self.max_pdu_bytes = max_pdu_bytes
        self.max_dataset_bytes = max_dataset_bytes
        self.dataset_bytes = 0  # of the message being received
        self._pdu_header = bytearray()
        self._pdu_left = 0
        self._in_p_data = False
        self._pdv_header = bytearray()
        self._pdv_left = 0
        self._pdv_control = 0

    def feed(self, data: bytes) -> None:
        """Account for *data*, the next bytes of the stream; raise :class:`Overrun`."""
        at = 0
        while at < len(data):
            if self._pdu_left == 0:
                at = self._read_pdu_header(data, at)
                continue
            take = min(self._pdu_left, len(data) - at)
            if self._in_p_data:
                self._read_pdvs(data[at : at + take])
            self._pdu_left -= take
            at += take
            if self._pdu_left == 0:  # a PDV cannot continue in the next PDU
                self._pdv_header.clear()
                self._pdv_left = 0

    def _read_pdu_header(self, data: bytes, at: int) -> int:
        take = min(_PDU_HEADER - len(self._pdu_header), len(data) - at)
        self._pdu_header += data[at : at + take]
        if len(self._pdu_header) == _PDU_HEADER:
            pdu_type, _reserved, length = struct.unpack(">BBL", self._pdu_header)
            self._pdu_header.clear()
            if length > self.max_pdu_bytes:
                raise Overrun(
                    f"a PDU of {length} bytes, over {self.max_pdu_bytes}", _INVALID_PARAMETER
                )
            self._pdu_left, self._in_p_data = length, pdu_type == _P_DATA_TF
        return at + take

    def _read_pdvs(self, chunk: bytes) -> None:
        at = 0
        while at < len(chunk):
            if self._pdv_left == 0:
                take = min(_PDV_HEADER - len(self._pdv_header), len(chunk) - at)
                self._pdv_header += chunk[at : at + take]
                at += take
                if len(self._pdv_header) == _PDV_HEADER:
                    length, _context, self._pdv_control = struct.unpack(">LBB", self._pdv_header)
                    self._pdv_header.clear()
                    self._pdv_left = max(length - 2, 0)
                    if self._pdv_left == 0:
                        self._end_of_pdv()
                continue
            take = min(self._pdv_left, len(chunk) - at)
            if not self._pdv_control & _COMMAND:
                self.dataset_bytes += take
                if self.dataset_bytes > self.max_dataset_bytes:
                    raise Overrun(
                        f"a data set of more than {self.max_dataset_bytes} bytes", _NOT_SPECIFIED
                    )
            self._pdv_left -= take
            at += take
            if self._pdv_left == 0:
                self._end_of_pdv()

    def _end_of_pdv(self) -> None:
        if self._pdv_control & _LAST and not self._pdv_control & _COMMAND:
            self.dataset_bytes = 0


class GuardedSocket:
    """A connected socket whose received bytes go through a :class:`PduMeter`; on an
    overrun it sends an A-ABORT, shuts the connection down and reads as closed."""

    def __init__(self, sock: socket.socket, meter: PduMeter) -> None:
        self._socket = sock
        self._meter = meter
        self._aborted = False

    def recv(self, size: int, *flags: int) -> bytes:
        if self._aborted:
            return b""
        data = self._socket.recv(size, *flags)
        try:
            self._meter.feed(data)
        except Overrun as overrun:
            logger.warning("DIMSE association aborted: %s", overrun)
            self._abort(overrun.reason)
            return b""
        return data

    def _abort(self, reason: int) -> None:
        """Send the A-ABORT, then read and drop what the peer still sends until it
        closes, as it should on an A-ABORT (PS3.8 9.2, ARTIM), or for at most
        :data:`_DRAIN_SECONDS`: closing with unread data resets the connection, and
        the reset can overtake the A-ABORT."""
        self._aborted = True
        deadline = time.monotonic() + _DRAIN_SECONDS
        try:
            self._socket.sendall(a_abort(reason))
            self._socket.shutdown(socket.SHUT_WR)
            self._socket.settimeout(_DRAIN_SECONDS)
            while time.monotonic() < deadline and self._socket.recv(_DRAIN_CHUNK):
                pass
        except OSError:  # reset, or the timeout
            logger.info("the DIMSE peer did not close the connection after the A-ABORT")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._socket, name)


def guarded_request_handler(max_pdu_bytes: int, max_dataset_bytes: int) -> type[BaseRequestHandler]:
    """pynetdicom's request handler, reading each association through the guard."""

    class GuardedRequestHandler(RequestHandler):
        def setup(self) -> None:
            super().setup()
            meter = PduMeter(max_pdu_bytes, max_dataset_bytes)
            self.request = GuardedSocket(self.request, meter)

    return GuardedRequestHandler
