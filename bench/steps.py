"""In-process cost of one SR request, split into its steps: ``python -m bench.steps``.

A quick before/after measure for a single optimisation (issue 7), without HTTP or
wrk: CPU and wall ms per request of the whole :class:`bench.inprocess.Ingest` path,
the database's wall time (its driver's calls, its commits among them) and the store's
calls' (with their encoding and decoding), the SR reader alone (parse + ``read_sr``)
and the whole DICOM read step of POST /assessments (parse + ``read_sr`` + ``instance_digest`` +
``sr_context.extract``, what ``_read_dicom`` does).

``--bundle`` measures FHIR transaction Bundles instead (``bodies.distinct_bundles``,
``application/fhir+json``): CPU ms per request of the read (``fhir.read_inbound``,
what ``read_assessment_body`` does: strict JSON, canonical form and digest,
``read_fhir``, server ids and index records) and of the read plus the stored
assessment (``services.assess_reports`` in a transaction, the answer serialised), and
the CPU ms of each read step alone.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import bodies, inprocess
from service import services
from service.adapters import (
    content_digest,
    db,
    db_schema as T,
    fhir_reader,
    fhir_writer,
    sr_reader,
    strict_json,
)
from service.config import Settings
from service.domain.model import AssessmentParameters
from service.entrypoints import read_process
from service.entrypoints.api import fhir


def measure(requests: int, lesions: int) -> dict[str, float]:
    """Per-request figures over *requests* distinct SRs of *lesions* lesions."""
    data = list(bodies.distinct_srs(requests + 10, lesions, prefix="STEP"))
    with tempfile.TemporaryDirectory() as workdir:
        ingest = inprocess.Ingest(inprocess.new_engine(Path(workdir) / "steps.db"))
        inprocess.cost(ingest, data[:10])  # warm-up
        ingest.reset()
        whole = inprocess.cost(ingest, data[10:])
        share = inprocess.database_share(ingest, whole)
    return {
        "request_cpu_ms": whole.cpu_ms,
        "request_wall_ms": whole.wall_ms,
        "db_wall_ms": share["db_wall_ms_per_request"],
        "commit_wall_ms": share["commit_wall_ms_per_request"],
        "store_wall_ms": share["store_wall_ms_per_request"],
        "reader_cpu_ms": _cpu_ms(_read, data),
        "dicom_read_cpu_ms": _cpu_ms(read_process.read_dicom, data),
    }


def _read(body: bytes) -> None:
    sr_reader.read_sr(sr_reader.parse_dicom(body))


def measure_bundles(requests: int, lesions: int) -> dict[str, float]:
    """Per-request figures over *requests* distinct Bundles of *lesions* lesions."""
    data = list(bodies.distinct_bundles(requests + 10, lesions, prefix="STEP"))
    settings = Settings()
    with tempfile.TemporaryDirectory() as workdir:
        engine = inprocess.new_engine(Path(workdir) / "steps.db")
        resolve = fhir.patient_resolver(engine, T.DEFAULT_TENANT)

        def read(body: bytes) -> list[services.Inbound]:
            return fhir.read_inbound(body, settings, resolve)

        def request(body: bytes) -> None:
            inbound = read(body)
            with engine.begin() as connection:  # open_store's transaction
                bundle = services.assess_reports(
                    db.Store(connection),
                    inbound,
                    [],
                    AssessmentParameters(),
                    inprocess.BASE_URL,
                    tenant=T.DEFAULT_TENANT,
                )
            fhir_writer.dumps(bundle)

        _cpu_ms(request, data[:10])  # warm-up
        figures = {"bundle_request_cpu_ms": _cpu_ms(request, data[10:])}
    documents = [strict_json.loads(body) for body in data]
    figures["bundle_read_cpu_ms"] = _cpu_ms(read, data)
    figures["strict_json_cpu_ms"] = _cpu_ms(strict_json.loads, data)
    figures["canonical_digest_cpu_ms"] = _cpu_ms(
        lambda document: content_digest.digest(fhir_reader.canonical(document)), documents
    )
    figures["read_fhir_cpu_ms"] = _cpu_ms(
        lambda document: fhir_reader.read_fhir(document, digest=""), documents
    )
    return figures


def _cpu_ms(step: Callable[[Any], object], data: Sequence[Any]) -> float:
    """CPU ms per item of *step* over *data*."""
    cpu = time.process_time()
    for body in data:
        step(body)
    return 1e3 * (time.process_time() - cpu) / len(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--lesions", type=int, default=10)
    parser.add_argument("--bundle", action="store_true", help="FHIR Bundles, not SRs")
    args = parser.parse_args()
    figures = (measure_bundles if args.bundle else measure)(args.requests, args.lesions)
    rounded = {name: round(value, 3) for name, value in figures.items()}
    sys.stdout.write(json.dumps(rounded, indent=1) + "\n")


if __name__ == "__main__":
    main()
