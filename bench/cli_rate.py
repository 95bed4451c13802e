"""The offline CLI against its baseline (issue 7): ``tumour-response assess FOLDER``
versus bare ``pydicom.dcmread`` plus a full walk of the same files.

The folder holds *patients* x *timepoints* SRs (10 lesions each, a timepoint every
six weeks), so the CLI links and assesses real histories rather than lone baselines.
Both sides run as fresh processes over the same folder, interpreter start-up included
(a user waits for it too); each is timed by the CPU seconds the child used (user +
system, from ``getrusage``: robust on a shared, loaded machine) and by wall clock, the
median of *runs* attempts each. The ratio is the CLI's file rate over the baseline's,
in CPU time.
"""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bench import bodies

# The baseline: read every file with pydicom and touch every element, nested ones too
# (Dataset.iterall recurses into sequences; reading .value decodes raw elements).
_WALK = """
import sys
from pathlib import Path
from pydicom import dcmread
count = 0
for path in sorted(Path(sys.argv[1]).glob("*.dcm")):
    for element in dcmread(path).iterall():
        element.value
        count += 1
print(count)
"""


def write_folder(folder: Path, patients: int, timepoints: int) -> int:
    """*patients* x *timepoints* distinct SRs under *folder*; returns how many."""
    folder.mkdir(parents=True, exist_ok=True)
    sr = bodies.template(10)
    first = date(2024, 1, 5)
    for patient in range(patients):
        for visit in range(timepoints):
            day = (first + timedelta(weeks=6 * visit)).strftime("%Y%m%d")
            body = bodies.stamp(sr, f"CLI-{patient:05d}", study_date=day)
            (folder / f"{patient:05d}-{visit:02d}.dcm").write_bytes(body)
    return patients * timepoints


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _median_seconds(command: list[str], runs: int) -> tuple[float, float]:
    """Median (CPU seconds, wall seconds) of *runs* runs of *command*."""
    cpu, wall = [], []
    for _ in range(runs):
        cpu_before, started = _children_cpu(), time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        wall.append(time.perf_counter() - started)
        cpu.append(_children_cpu() - cpu_before)
    return statistics.median(cpu), statistics.median(wall)


def measure(work: Path, patients: int, timepoints: int, runs: int) -> dict[str, Any]:
    """Files per second of the CLI and of the baseline over one folder, and their ratio."""
    folder = work / "cli-folder"
    files = write_folder(folder, patients, timepoints)
    cli = [sys.executable, "-m", "service", "assess", "--format", "table", str(folder)]
    baseline = [sys.executable, "-c", _WALK, str(folder)]
    cli_cpu, cli_wall = _median_seconds(cli, runs)
    baseline_cpu, baseline_wall = _median_seconds(baseline, runs)
    return {
        "files": files,
        "patients": patients,
        "timepoints": timepoints,
        "cli_cpu_s": cli_cpu,
        "cli_wall_s": cli_wall,
        "baseline_cpu_s": baseline_cpu,
        "baseline_wall_s": baseline_wall,
        "cli_files_per_cpu_s": files / cli_cpu,
        "baseline_files_per_cpu_s": files / baseline_cpu,
        "ratio": baseline_cpu / cli_cpu,
    }
