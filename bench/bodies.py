"""Request bodies for the benchmark: distinct TID 1500 SRs, written to files.

One SR per lesion count is built with :func:`tests.sr_factory.make_sr` (highdicom,
~0.1 s each); every further body is that template re-stamped with its own PatientID,
StudyInstanceUID and SOP Instance UID, so each request is a new patient and a new
document (no re-delivery shortcut, contract section 4). The content tree is left
as raw bytes by pydicom and written back untouched, which keeps generation at about
a millisecond per body.

A :class:`Supply` keeps them on disk for wrk (``rotate.lua``) and writes more as the
runs need them: a stateful server never gets a body twice, however fast it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from service.adapters import fhir_writer
from tests.fhir_factory import measurement_bundle
from tests.sr_factory import LesionSpec, make_sr, sr_bytes

STOW_BOUNDARY = "bench-stow-boundary-7f3a9c"
STOW_CONTENT_TYPE = f'multipart/related; type="application/dicom"; boundary={STOW_BOUNDARY}'


def lesions(count: int) -> list[LesionSpec]:
    """*count* target lesions, alternating liver/lung, with distinct sizes."""
    sites = ("liver", "lung")
    return [
        LesionSpec(
            f"T{index + 1}",
            long_axis_mm=10.0 + index % 40,
            short_axis_mm=5.0 + index % 20,
            role="target",
            site=sites[index % 2],
        )
        for index in range(count)
    ]


def template(lesion_count: int, study_date: str = "20240105") -> Dataset:
    """The SR every body of *lesion_count* lesions is stamped from."""
    return make_sr(
        patient_id="BENCH-TEMPLATE", study_date=study_date, lesions=lesions(lesion_count)
    )


def stamp(sr: Dataset, patient_id: str, study_date: str | None = None) -> bytes:
    """*sr* as a new document of patient *patient_id* (optionally on another date)."""
    sop_uid = generate_uid(entropy_srcs=["bench-sr", patient_id, study_date or ""])
    sr.PatientID = patient_id
    sr.SOPInstanceUID = sop_uid
    sr.file_meta.MediaStorageSOPInstanceUID = sop_uid
    sr.StudyInstanceUID = generate_uid(entropy_srcs=["bench-study", patient_id, study_date or ""])
    if study_date is not None:
        sr.StudyDate = study_date
        sr.ContentDate = study_date
    return sr_bytes(sr)


def distinct_srs(
    count: int, lesion_count: int = 10, prefix: str = "BENCH", start: int = 0
) -> Iterator[bytes]:
    """*count* SRs of *lesion_count* lesions, each of its own patient (numbered from
    *start*)."""
    sr = template(lesion_count)
    for index in range(start, start + count):
        yield stamp(sr, f"{prefix}-{index:07d}")


def distinct_bundles(
    count: int, lesion_count: int = 10, prefix: str = "BUNDLE", start: int = 0
) -> Iterator[bytes]:
    """*count* FHIR transaction Bundles of one timepoint with *lesion_count* target
    lesions (a long axis Observation each), each of its own patient (numbered from
    *start*)."""
    sizes = [(f"T{n}", 10.0 + n) for n in range(1, lesion_count + 1)]
    for index in range(start, start + count):
        bundle = measurement_bundle(f"{prefix}-{index:07d}", "2024-01-05", sizes)
        yield fhir_writer.dumps(bundle)


def stow_body(parts: Sequence[bytes]) -> bytes:
    """A STOW-RS request body (PS3.18 section 10.5) of *parts*, one instance each."""
    chunks = [
        f"--{STOW_BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part + b"\r\n"
        for part in parts
    ]
    return b"".join(chunks) + f"--{STOW_BOUNDARY}--\r\n".encode()


def distinct_stow_bodies(
    count: int, lesion_count: int = 10, prefix: str = "BENCH", start: int = 0
) -> Iterator[bytes]:
    """:func:`distinct_srs`, each in a STOW-RS request body of its own."""
    return (stow_body([sr]) for sr in distinct_srs(count, lesion_count, prefix, start))


# The bodies a Supply writes, (count, lesion count, start=first number) -> bodies, and
# the suffix of their files.
KINDS: dict[str, tuple[Callable[..., Iterator[bytes]], str]] = {
    "sr": (distinct_srs, "dcm"),
    "bundle": (distinct_bundles, "json"),
    "stow": (distinct_stow_bodies, "mime"),
}


class Supply:
    """Distinct bodies of one *kind* (:data:`KINDS`) under *directory*, each in a file
    of its own; *listing* names them one per line (read by rotate.lua at each wrk run).
    :meth:`extend` writes more, never one already written."""

    def __init__(self, directory: Path, kind: str, lesion_count: int, count: int) -> None:
        self.directory = directory
        self.kind = kind
        self.lesion_count = lesion_count
        self.listing = directory / "bodies.txt"
        self.count = 0
        self.total_bytes = 0
        directory.mkdir(parents=True, exist_ok=True)
        self.listing.write_text("")
        self.extend(count)

    @property
    def mean_bytes(self) -> float:
        return self.total_bytes / max(self.count, 1)

    def extend(self, more: int) -> None:
        """Write *more* bodies after those written."""
        make, suffix = KINDS[self.kind]
        names: list[str] = []
        bodies = make(more, self.lesion_count, start=self.count)
        for index, body in enumerate(bodies, self.count):
            path = self.directory / f"{index:07d}.{suffix}"
            path.write_bytes(body)
            names.append(f"{path}\n")
            self.total_bytes += len(body)
        with self.listing.open("a") as listing:
            listing.writelines(names)
        self.count += len(names)
