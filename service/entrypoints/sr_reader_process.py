"""The companion process that reads the SRs of ``POST /assessments``, STOW-RS and
C-STORE, and the FHIR bodies of ``POST /assessments``:
``python -m service.entrypoints.sr_reader_process`` (started by
:class:`~service.entrypoints.read_process.ReadProcess`, which says why).

It imports the SR and FHIR readers and the service's logging (configured as the
server's, so that no value of a data set is logged) and nothing of its storage or HTTP
(~60 MB resident, against ~150 MB for the whole service). Each body comes on stdin
after its :data:`REQUEST` header (its length, what to read, the StudyInstanceUID it
must carry, if any, which follows the header) and each answer goes to stdout after its
length (:data:`LENGTH`); an answer is ``("ok", found)`` or ``("error", exception)``,
pickled by :func:`.model_pickle.dumps`. What is found is what
:func:`.sr_instance.read_parts` (``POST /assessments``, :data:`PARTS`) or
:func:`.sr_instance.read_checked` (STOW-RS and C-STORE, :data:`INSTANCE`) returns, or
for :data:`FHIR` the :class:`~service.adapters.fhir_inbound.FhirRead` of the body, or
None when it names a Patient by an id only the resource index can resolve (the serving
process reads that one itself).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import struct
import sys
from collections.abc import Sequence
from typing import Any, BinaryIO, Final

from service.adapters import fhir_inbound, strict_json
from service.domain.model import PatientIdentity
from service.entrypoints import logs, model_pickle
from service.entrypoints.sr_instance import read_checked, read_parts

LENGTH: Final = struct.Struct(">Q")  # of each answer
REQUEST: Final = struct.Struct(">QBI")  # the body's length, what to read, the study's
PARTS: Final = 0  # sr_instance.read_parts
INSTANCE: Final = 1  # sr_instance.read_checked
FHIR: Final = 2  # fhir_inbound.parse and read


class _StoredPatient(Exception):
    """A FHIR body names a Patient by an id the resource index resolves."""


def _unresolved(patient_id: str) -> PatientIdentity | None:
    raise _StoredPatient(patient_id)


def read_fhir(
    data: bytes, patient_system: str, limits: fhir_inbound.Limits
) -> fhir_inbound.FhirRead | None:
    """The :class:`~service.adapters.fhir_inbound.FhirRead` of *data*, or None when it
    names a Patient by an id only the resource index resolves."""
    try:
        return fhir_inbound.read(fhir_inbound.parse(data, limits), patient_system, _unresolved)
    except _StoredPatient:
        return None


def arguments(
    patient_system: str,
    max_inflated_bytes: int,
    fhir_limits: fhir_inbound.Limits,
    log_level: str,
    log_format: str,
) -> tuple[str, ...]:
    """The command-line arguments of a reader (:func:`main` reads them)."""
    return (
        "--patient-system",
        patient_system,
        "--max-inflated-bytes",
        str(max_inflated_bytes),
        "--fhir-limits",
        json.dumps(dataclasses.asdict(fhir_limits)),
        "--log-level",
        log_level,
        "--log-format",
        log_format,
    )


def _fhir_limits(text: str) -> fhir_inbound.Limits:
    found = json.loads(text)
    return fhir_inbound.Limits(
        found["bundle_bytes"], found["resource_bytes"], strict_json.JsonLimits(**found["json"])
    )


def request(data: bytes, kind: int = PARTS, study: str | None = None) -> bytes:
    """The header of a request to read *data* (the study follows it)."""
    encoded = b"" if study is None else study.encode()
    return REQUEST.pack(len(data), kind, len(encoded)) + encoded


def serve(
    source: BinaryIO,
    sink: BinaryIO,
    patient_system: str,
    max_inflated_bytes: int,
    fhir_limits: fhir_inbound.Limits,
) -> None:
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
            elif kind == FHIR:
                answer = ("ok", read_fhir(data, patient_system, fhir_limits))
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
    parser.add_argument("--fhir-limits", type=_fhir_limits, required=True)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--log-format", default="json", choices=("json", "text"))
    args = parser.parse_args(argv)
    logs.configure(args.log_level, args.log_format)  # as the server's: no values logged
    # The answers own stdout: anything printed goes to stderr instead.
    sink = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    with contextlib.suppress(KeyboardInterrupt), sink:
        serve(
            sys.stdin.buffer, sink, args.patient_system, args.max_inflated_bytes, args.fhir_limits
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
