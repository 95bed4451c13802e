"""``tumour-response assess FILES...``: the offline assessment (issue 9).

SR files (DICOM PS3.10) and FHIR JSON files (an Observation or a Bundle), or folders of
them (recursive), are read as ``POST /assessments`` / STOW-RS read them
(:func:`dicom_status.read_instance`, :func:`fhir_reader.read_fhir`), stored in a database
(in-memory SQLite unless ``--database`` names one) and assessed with the criteria options
of the HTTP API. The verdicts are printed as a table, one row per patient timepoint per
criterion, or written to ``--output`` as FHIR Bundles, HTML or PDF reports, or DICOM SRs.

Exit codes: 0 every input was assessed; 1 some inputs were refused (each named on stderr
with its reason); 2 usage error (argparse's own code).
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TextIO

from sqlalchemy import Engine

from service import services
from service.adapters import (
    content_digest,
    db,
    fhir_reader,
    fhir_writer,
    report_pdf,
    report_render,
    strict_json,
)
from service.config import Settings
from service.domain.criteria import CRITERIA
from service.domain.errors import DomainError
from service.domain.model import (
    AssessmentParameters,
    ClinicalSetting,
    PatientIdentity,
    Primary,
    Therapy,
)
from service.entrypoints import dicom_status, sr_instance

FORMATS = ("table", "fhir", "html", "pdf", "sr")
IN_MEMORY = "sqlite://"
_BAR_WIDTH = 30
_TABLE_HEADERS = (
    *("Patient", "Date", "Criterion", "Overall", "Target", "Non-target", "New"),
    *("Best overall", "Sum (mm)", "From baseline (%)", "From nadir (%)"),
)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``assess`` command to the ``tumour-response`` parser."""
    parser = commands.add_parser(
        "assess",
        help="assess SR / FHIR JSON files offline",
        description="Assess DICOM SR (TID 1500) and FHIR JSON files or folders of them; "
        "print the verdicts or write reports. Exit 0: all assessed; 1: some inputs "
        "refused; 2: usage error.",
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="FILE", help="file or folder")
    parser.add_argument("--database", default=IN_MEMORY, help="SQLAlchemy URL (default: memory)")
    parser.add_argument("--format", choices=FORMATS, default="table", help="default: table")
    parser.add_argument("--output", type=Path, help="folder for --format fhir|html|pdf|sr")
    parser.add_argument("--base-url", default="http://127.0.0.1:8000", help="for FHIR URLs")
    parser.add_argument("--progress", action="store_true", help="progress bar even off a TTY")
    criteria = parser.add_argument_group("criteria (as the POST /assessments parameters)")
    criteria.add_argument("--criteria", action="append", choices=sorted(CRITERIA), default=[])
    criteria.add_argument("--confirmation", action="store_true")
    criteria.add_argument("--confirm-min-days", type=_days(1), default=28)
    criteria.add_argument("--sd-min-days", type=_days(0), default=42)
    criteria.add_argument("--no-pr-persistence", dest="pr_persistence", action="store_false")
    criteria.add_argument(
        "--choi-hu-aggregation", choices=("mean", "size-weighted"), default="mean"
    )
    criteria.add_argument(
        "--choi-size-reference", choices=("baseline", "nadir"), default="baseline"
    )
    criteria.add_argument("--chun-patient-policy", choices=("worst", "majority"), default="worst")
    criteria.add_argument("--mrecist-pd-5mm", action="store_true")
    criteria.add_argument("--icpd-window-days", type=_days(0), default=56)
    criteria.add_argument("--primary", choices=[p.value for p in Primary])
    criteria.add_argument("--therapy", action="append", choices=[t.value for t in Therapy])
    parser.set_defaults(run=run, parser=parser)


def _days(minimum: int) -> Callable[[str], int]:
    """A day count of at least *minimum* (the HTTP API's bounds)."""

    def parse(text: str) -> int:
        value = int(text)
        if not minimum <= value <= 3650:
            raise argparse.ArgumentTypeError(f"{value} is not in {minimum}-3650")
        return value

    return parse


def parameters(args: argparse.Namespace) -> tuple[AssessmentParameters, ClinicalSetting | None]:
    """The protocol parameters and clinical setting of the options (contract section 2)."""
    primary = None if args.primary is None else Primary(args.primary)
    setting = ClinicalSetting.chosen(primary, (Therapy(t) for t in args.therapy or ()))
    params = AssessmentParameters(
        confirmation=args.confirmation,
        confirm_min_days=args.confirm_min_days,
        sd_min_days=args.sd_min_days,
        pr_persistence=args.pr_persistence,
        choi_hu_aggregation=args.choi_hu_aggregation,
        choi_size_reference=args.choi_size_reference,
        chun_patient_policy=args.chun_patient_policy,
        mrecist_pd_5mm=args.mrecist_pd_5mm,
        icpd_window_days=args.icpd_window_days,
    )
    return params, setting


@dataclass
class _Run:
    """What the inputs gave: reports per patient, and the refused files with reasons."""

    inbound: dict[PatientIdentity, list[services.Inbound]] = field(
        default_factory=lambda: defaultdict(list)
    )
    refused: list[tuple[Path, str]] = field(default_factory=list)


def run(settings: Settings, args: argparse.Namespace) -> int:
    missing = [str(path) for path in args.paths if not path.exists()]
    if missing:
        args.parser.error(f"no such file or folder: {', '.join(missing)}")
    if args.format != "table" and args.output is None:
        args.parser.error(f"--format {args.format} needs --output DIR")
    files = list(input_files(args.paths))
    if not files:
        args.parser.error("no input files")
    params, setting = parameters(args)
    engine = db.create_engine(args.database)
    try:
        db.migrate(engine)
        show = args.progress or (any(p.is_dir() for p in args.paths) and sys.stderr.isatty())
        done = _store(engine, files, settings, _Progress(len(files), sys.stderr if show else None))
        _answer(engine, done, args, params, setting, settings.tenant)
    finally:
        engine.dispose()
    for path, reason in done.refused:
        sys.stderr.write(f"refused: {path}: {reason}\n")
    return 1 if done.refused else 0


def input_files(paths: Iterable[Path]) -> Iterable[Path]:
    """The files named, and every file under the folders named (sorted, no dot-files)."""
    for path in paths:
        if path.is_dir():
            yield from sorted(
                found
                for found in path.rglob("*")
                if found.is_file() and not found.name.startswith(".")
            )
        else:
            yield path


def read_file(path: Path, settings: Settings) -> list[services.Inbound]:
    """The reports of one SR or FHIR JSON file; raises DomainError or InstanceRefused."""
    data = path.read_bytes()
    if data.lstrip()[:1] in (b"{", b"["):
        document = strict_json.loads(data)
        digest = content_digest.digest(fhir_reader.canonical(document))
        system = settings.patient_system
        read = fhir_reader.read_fhir(document, digest=digest, patient_system=system)
        return [services.Inbound(report, digest) for report in read.reports]
    instance = dicom_status.read_instance(
        data,
        patient_system=settings.patient_system,
        max_inflated_bytes=settings.sr_max_inflated_bytes,
    )
    return [instance.inbound]  # its dicom_context serves --format sr


def _store(engine: Engine, files: Sequence[Path], settings: Settings, progress: _Progress) -> _Run:
    """Store each file in its own transaction, so one refused file spoils nothing else."""
    done = _Run()
    for path in files:
        try:
            inbound = read_file(path, settings)
            with db.open_store(engine) as store:
                services.store_reports(store, inbound, tenant=settings.tenant)
        except (DomainError, sr_instance.InstanceRefused, OSError) as exc:
            done.refused.append((path, str(exc)))
        else:
            for item in inbound:
                done.inbound[item.report.patient].append(item)
        progress.advance()
    progress.finish()
    return done


def _answer(
    engine: Engine,
    done: _Run,
    args: argparse.Namespace,
    params: AssessmentParameters,
    setting: ClinicalSetting | None,
    tenant: str,
) -> None:
    rows: list[list[str]] = []
    for patient, inbound in done.inbound.items():
        with db.open_store(engine) as store:
            bundle = services.assess_reports(
                store, inbound, args.criteria, params, args.base_url, setting, tenant=tenant
            )
            view = services.patient_view(
                store, patient, args.criteria, params, setting, tenant=tenant
            )
            if args.format == "table":
                rows.extend(_table_rows(view))
            elif args.format == "fhir":
                _write(args.output / f"{view.page_id}.json", fhir_writer.dumps(bundle))
            elif args.format == "sr":
                for day in sorted({item.report.date for item in inbound}):
                    same_day = [item for item in inbound if item.report.date == day]
                    sr = services.assess_newest_as_sr(
                        store, same_day, args.criteria, params, setting, tenant=tenant
                    )
                    _write(args.output / view.page_id / f"{day.isoformat()}.dcm", sr)
            else:
                for day in (timepoint.date for timepoint in view.history.timepoints):
                    name = f"{day.isoformat()}.{args.format}"
                    _write(args.output / view.page_id / name, _rendered(view, day, args.format))
    if args.format == "table":
        sys.stdout.write(format_table(_TABLE_HEADERS, rows) + "\n")


def _rendered(view: report_render.PatientView, day: date, fmt: str) -> bytes:
    if fmt == "pdf":
        return report_pdf.report_pdf(view, day)
    return report_render.report_html(view, day).encode()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    sys.stdout.write(f"{path}\n")


def _table_rows(view: report_render.PatientView) -> list[list[str]]:
    rows = []
    for timepoint in view.history.timepoints:
        for row in report_render.verdict_rows(view, timepoint.date):
            rows.append(
                [view.history.patient.value, timepoint.date.isoformat(), row.criterion]
                + [row.overall, row.target, row.non_target, row.new_lesions, row.best_overall]
                + [row.sum_mm, row.from_baseline, row.from_nadir]
            )
    return rows


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = [headers, ["-" * width for width in widths], *rows]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


class _Progress:
    """A plain-text progress bar on *stream*; silent without one."""

    def __init__(self, total: int, stream: TextIO | None) -> None:
        self.total, self.count, self.stream = total, 0, stream

    def advance(self) -> None:
        self.count += 1
        if self.stream is not None:
            filled = _BAR_WIDTH * self.count // self.total
            bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
            self.stream.write(f"\r[{bar}] {self.count}/{self.total} files")
            self.stream.flush()

    def finish(self) -> None:
        if self.stream is not None:
            self.stream.write("\n")
