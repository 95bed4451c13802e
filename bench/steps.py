"""In-process cost of one SR request, split into its steps: ``python -m bench.steps``.

A quick before/after measure for a single optimisation (issue 7), without HTTP or
wrk: CPU and wall ms per request of the whole :class:`bench.inprocess.Ingest` path,
the database's wall share, the SR reader alone (parse + ``read_sr``) and the whole
DICOM read step of POST /assessments (parse + ``read_sr`` + ``instance_digest`` +
``sr_context.extract``, what ``_read_dicom`` does).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench import bodies, inprocess
from service.adapters import sr_context, sr_reader
from service.entrypoints import dicom_status


def measure(requests: int, lesions: int) -> dict[str, float]:
    """Per-request figures over *requests* distinct SRs of *lesions* lesions."""
    data = list(bodies.distinct_srs(requests + 10, lesions, prefix="STEP"))
    with tempfile.TemporaryDirectory() as workdir:
        ingest = inprocess.Ingest(inprocess.new_engine(Path(workdir) / "steps.db"))
        inprocess.cost(ingest, data[:10])  # warm-up
        ingest.db_seconds = 0.0
        whole = inprocess.cost(ingest, data[10:])
        db_ms = 1e3 * ingest.db_seconds / whole.n
    return {
        "request_cpu_ms": whole.cpu_ms,
        "request_wall_ms": whole.wall_ms,
        "db_wall_ms": db_ms,
        "reader_cpu_ms": _cpu_ms(_read, data),
        "dicom_read_cpu_ms": _cpu_ms(_read_dicom, data),
    }


def _read(body: bytes) -> None:
    sr_reader.read_sr(sr_reader.parse_dicom(body))


def _read_dicom(body: bytes) -> None:
    """The work of ``_read_dicom`` in service/entrypoints/api/assessments.py."""
    dataset = sr_reader.parse_dicom(body)
    sr_reader.read_sr(dataset)
    dicom_status.instance_digest(body, dataset)
    sr_context.extract(dataset)


def _cpu_ms(step: Callable[[bytes], None], data: list[bytes]) -> float:
    """CPU ms per body of *step* over *data*."""
    cpu = time.process_time()
    for body in data:
        step(body)
    return 1e3 * (time.process_time() - cpu) / len(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--lesions", type=int, default=10)
    args = parser.parse_args()
    figures = measure(args.requests, args.lesions)
    rounded = {name: round(value, 3) for name, value in figures.items()}
    sys.stdout.write(json.dumps(rounded, indent=1) + "\n")


if __name__ == "__main__":
    main()
