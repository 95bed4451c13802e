"""``tumour-response assess`` as a script sees it: a real process over the sample SRs,
its table, its files and its exit codes (issue 9)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pydicom import dcmread

from tests.fhir_factory import measurement_bundle

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "tests" / "data" / "sr"


def assess(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", "assess", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=180,
    )


def table(stdout: str) -> list[list[str]]:
    """The table's rows as cells (columns are two or more spaces apart)."""
    lines = stdout.strip().splitlines()
    assert lines[0].split()[:3] == ["Patient", "Date", "Criterion"]
    return [[cell for cell in line.split("  ") if cell] for line in lines[2:]]


def test_a_folder_of_sample_srs_prints_verdicts_and_names_each_refused_file() -> None:
    done = assess(SAMPLES, ROOT / "examples", "--progress")
    assert done.returncode == 1, done.stderr
    rows = [[cell.strip() for cell in row] for row in table(done.stdout)]
    assert rows[0][:4] == ["1CT1", "2004-01-19", "RECIST 1.1", "baseline"]  # inputs in order
    assert rows[1][:4] == ["EXAMPLE-1", "2024-01-05", "RECIST 1.1", "baseline"]
    assert rows[2] == [
        *("EXAMPLE-1", "2024-03-08", "RECIST 1.1", "PR", "PR", "-", "no", "PR"),
        *("70", "-30", "-30"),
    ]
    assert len(rows) == 3
    refused = [line for line in done.stderr.splitlines() if line.startswith("refused: ")]
    assert len(refused) == 2
    assert any("ct_image.dcm: SOP Class 1.2.840.10008.5.1.4.1.1.2" in line for line in refused)
    assert any("dcmjs_structured_report.dcm: the SR has no PatientID" in line for line in refused)
    assert "] 6/6 files" in done.stderr  # the progress bar, asked for off a TTY


def test_all_good_inputs_exit_0_without_a_progress_bar_off_a_tty() -> None:
    done = assess(ROOT / "examples", "--criteria", "choi")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert [row[2].strip() for row in table(done.stdout)] == ["RECIST 1.1", "Choi criteria"] * 2


@pytest.mark.parametrize(
    "args",
    [
        ("no-such-folder",),
        ("examples", "--format", "pdf"),  # no --output
        ("examples", "--criteria", "recist-2"),
        ("examples", "--sd-min-days", "-1"),
    ],
)
def test_usage_errors_exit_2(args: tuple[str, ...]) -> None:
    done = assess(*args)
    assert done.returncode == 2
    assert "usage: tumour-response assess" in done.stderr


def test_writes_fhir_html_pdf_and_sr(tmp_path: Path) -> None:
    for fmt in ("fhir", "html", "pdf", "sr"):
        done = assess(ROOT / "examples", "--format", fmt, "--output", tmp_path / fmt)
        assert done.returncode == 0, done.stderr
    (bundle_path,) = (tmp_path / "fhir").glob("*.json")
    bundle = json.loads(bundle_path.read_text())
    reports = [
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "DiagnosticReport"
    ]
    assert [r["effectiveDateTime"] for r in reports] == ["2024-01-05", "2024-03-08"]
    assert reports[1]["conclusion"].startswith("RECIST 1.1: PR")
    page_id = bundle_path.stem
    html = (tmp_path / "html" / page_id / "2024-03-08.html").read_text()
    assert "<td>RECIST 1.1</td><td>PR</td>" in html and '<figure id="sum-chart"><svg' in html
    pdf = tmp_path / "pdf" / page_id / "2024-03-08.pdf"
    assert pdf.read_bytes().startswith(b"%PDF-")
    srs = sorted((tmp_path / "sr" / page_id).glob("*.dcm"))
    assert [path.name for path in srs] == ["2024-01-05.dcm", "2024-03-08.dcm"]
    assert all(dcmread(path).Modality == "SR" for path in srs)
    if shutil.which("pdftotext"):
        text = subprocess.run(
            ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
        ).stdout
        assert "Timepoint: 2024-03-08 (Follow-up, final)" in text


def test_a_real_database_keeps_the_history_between_runs(database_url: str) -> None:
    database = database_url
    assert assess(ROOT / "examples" / "baseline.dcm", "--database", database).returncode == 0
    done = assess(ROOT / "examples" / "follow-up.dcm", "--database", database)
    assert done.returncode == 0, done.stderr
    assert [row[3].strip() for row in table(done.stdout)] == ["baseline", "PR"]


def test_fhir_json_and_sr_of_one_patient_join_one_history(tmp_path: Path) -> None:
    folder = tmp_path / "inputs"
    (folder / "nested").mkdir(parents=True)
    shutil.copy(ROOT / "examples" / "baseline.dcm", folder / "baseline.dcm")
    follow_up = measurement_bundle("EXAMPLE-1", "2024-03-08", [("T1", 42), ("T2", 28)])
    (folder / "nested" / "follow-up.json").write_text(json.dumps(follow_up))
    (folder / "broken.json").write_text('{"resourceType": "Bundle", "type": NaN}')
    done = assess(folder)
    assert done.returncode == 1
    assert [row[3].strip() for row in table(done.stdout)] == ["baseline", "PR"]
    (refused,) = done.stderr.splitlines()
    assert refused.startswith(f"refused: {folder / 'broken.json'}: ")
