"""The companion process that reads the SRs of ``POST /assessments``:
``python -m service.entrypoints.sr_reader_process`` (started by
:class:`~service.entrypoints.read_process.ReadProcess`, which says why).

It imports the SR reader and the service's logging (configured as the server's, so
that no value of a data set is logged) and nothing of its storage, HTTP or FHIR (~60 MB
resident, against ~150 MB for the whole service). Each body comes on stdin and each
answer goes to stdout, both framed by their length (8 bytes, big-endian); an answer is
``("ok", (report, data set start, DICOM context))`` of :func:`read_parts`, or
``("error", exception)``, pickled by :func:`.model_pickle.dumps`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import struct
import sys
from collections.abc import Sequence
from typing import Any, BinaryIO, Final

from service.adapters import sr_context, sr_reader
from service.domain.model import TimepointReport
from service.entrypoints import logs, model_pickle

LENGTH: Final = struct.Struct(">Q")  # of each frame
# A report, where its data set starts in the bytes read, its DICOM context.
Parts = tuple[TimepointReport, int, dict[str, Any]]


def read_parts(data: bytes, patient_system: str, max_inflated_bytes: int) -> Parts:
    """The report of the SR *data* (DICOM Part 10), where its data set starts after the
    File Meta Information (what its digest covers), and its DICOM context."""
    dataset = sr_reader.parse_dicom(data, max_inflated_bytes=max_inflated_bytes)
    report = sr_reader.read_sr(dataset, patient_system=patient_system)
    return report, sr_reader.data_set_start(dataset), sr_context.extract(dataset)


def serve(source: BinaryIO, sink: BinaryIO, patient_system: str, max_inflated_bytes: int) -> None:
    """Each framed body of *source* read, its framed answer written to *sink*, until
    *source* ends."""
    while True:
        header = source.read(LENGTH.size)
        if len(header) < LENGTH.size:
            return
        (length,) = LENGTH.unpack(header)
        data = source.read(length)
        if len(data) < length:
            return
        answer: tuple[str, Any]
        try:
            answer = ("ok", read_parts(data, patient_system, max_inflated_bytes))
        except Exception as exc:  # the serving process raises it as its own
            answer = ("error", exc)
        try:
            encoded = model_pickle.dumps(answer)
        except Exception as exc:  # an exception that does not pickle
            encoded = model_pickle.dumps(("error", RuntimeError(repr(exc))))
        sink.write(LENGTH.pack(len(encoded)) + encoded)
        sink.flush()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The SR reader of POST /assessments.")
    parser.add_argument("--patient-system", required=True)
    parser.add_argument("--max-inflated-bytes", type=int, required=True)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--log-format", default="json", choices=("json", "text"))
    args = parser.parse_args(argv)
    logs.configure(args.log_level, args.log_format)  # as the server's: no values logged
    # The answers own stdout: anything printed goes to stderr instead.
    sink = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    with contextlib.suppress(KeyboardInterrupt), sink:
        serve(sys.stdin.buffer, sink, args.patient_system, args.max_inflated_bytes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
