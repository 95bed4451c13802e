"""The companion process that reads the SRs of ``POST /assessments``, STOW-RS and
C-STORE: ``python -m service.entrypoints.sr_reader_process`` (started by
:class:`~service.entrypoints.read_process.ReadProcess`, which says why).

It imports the SR reader and the service's logging (configured as the server's, so
that no value of a data set is logged) and nothing of its storage, HTTP or FHIR (~60 MB
resident, against ~150 MB for the whole service). Each body comes on stdin after its
:data:`REQUEST` header (its length, what to read, the StudyInstanceUID it must carry,
if any, which follows the header) and each answer goes to stdout after its length
(:data:`LENGTH`); an answer is ``("ok", found)`` or ``("error", exception)``, pickled
by :func:`.model_pickle.dumps`. What is found is what :func:`.sr_instance.read_parts`
(``POST /assessments``, :data:`PARTS`) or :func:`.sr_instance.read_checked` (STOW-RS
and C-STORE, :data:`INSTANCE`) returns.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import struct
import sys
from collections.abc import Sequence
from typing import Any, BinaryIO, Final

from service.entrypoints import logs, model_pickle
from service.entrypoints.sr_instance import read_checked, read_parts

LENGTH: Final = struct.Struct(">Q")  # of each answer
REQUEST: Final = struct.Struct(">QBI")  # the body's length, what to read, the study's
PARTS: Final = 0  # sr_instance.read_parts
INSTANCE: Final = 1  # sr_instance.read_checked


def request(data: bytes, kind: int = PARTS, study: str | None = None) -> bytes:
    """The header of a request to read *data* (the study follows it)."""
    encoded = b"" if study is None else study.encode()
    return REQUEST.pack(len(data), kind, len(encoded)) + encoded


def serve(source: BinaryIO, sink: BinaryIO, patient_system: str, max_inflated_bytes: int) -> None:
    """Each request of *source* read, its framed answer written to *sink*, until
    *source* ends."""
    while True:
        header = source.read(REQUEST.size)
        if len(header) < REQUEST.size:
            return
        length, kind, study_length = REQUEST.unpack(header)
        study = source.read(study_length)
        data = source.read(length)
        if len(study) < study_length or len(data) < length:
            return
        answer: tuple[str, Any]
        try:
            if kind == INSTANCE:
                checked = study.decode() if study_length else None
                answer = ("ok", read_checked(data, patient_system, checked, max_inflated_bytes))
            else:
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
    parser = argparse.ArgumentParser(description="The SR reader of the server.")
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
