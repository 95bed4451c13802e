"""The patient page in a real headless Chromium (Debian ``chromium``) against the real
server process: the DOM holds the charts as SVG and the screenshot shows them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image, ImageStat

from service.adapters import report_render
from service.domain.model import DEFAULT_PATIENT_SYSTEM, PatientIdentity

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium not installed"),
]

ROOT = Path(__file__).resolve().parents[2]
PAGE = f"/ui/patients/{report_render.page_id(PatientIdentity(DEFAULT_PATIENT_SYSTEM, 'EXAMPLE-1'))}"
LINE_BLUE = (0x00, 0x72, 0xB2)  # the sum-of-diameters line (and the first spider line)


def chromium(tmp_path: Path, *args: str) -> str:
    """Run headless Chromium with a throwaway profile; its stdout."""
    command = [
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1280,2000",
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def test_patient_page_renders_with_visible_charts(server: str, tmp_path: Path) -> None:
    for name in ("baseline", "follow-up"):
        answer = httpx.post(
            f"{server}/assessments",
            content=(ROOT / "examples" / f"{name}.dcm").read_bytes(),
            headers={"Content-Type": "application/dicom"},
        )
        assert answer.status_code == 200, answer.text
    url = f"{server}{PAGE}"
    dom = chromium(tmp_path, "--dump-dom", url)
    assert "<h1>Patient EXAMPLE-1</h1>" in dom
    assert '<figure id="sum-chart"><svg' in dom
    assert '<figure id="spider-chart"><svg' in dom
    assert "Sum of diameters (RECIST 1.1)" in dom

    shot = tmp_path / "patient.png"
    chromium(tmp_path, f"--screenshot={shot}", url)
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 2000)
    assert max(ImageStat.Stat(image).stddev) > 20  # not a blank page
    pixels = np.asarray(image, dtype=np.int16)
    blue = int((np.abs(pixels - np.array(LINE_BLUE)) <= 40).all(axis=2).sum())
    assert blue > 200, "the sum-of-diameters line is not visible"

    cohort = chromium(tmp_path, "--dump-dom", f"{server}/ui/cohort")
    assert '<figure id="waterfall"><svg' in cohort
    assert f'href="{PAGE}"' in cohort
