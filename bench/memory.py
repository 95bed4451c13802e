"""What one large request adds to the server's peak memory (issue 7: "a 200-lesion SR or
a 1,000-entry Bundle adds no more than 5 x its own size").

Each large body goes to a fresh server (``python -m service serve``, as in
production) after a warm-up of ordinary requests (10-lesion SRs, each of its own
patient): the growth of the peak resident set (VmHWM) over that one request, against
the body's size.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

from bench import bodies, procstat, servers

MIB = 1024 * 1024
WARMUP_REQUESTS = 20


def added_by(workdir: Path, body: bytes, content_type: str) -> dict[str, Any]:
    """Peak RSS of a fresh, warmed-up server (with the processes it started: its SR
    reader) before and after POST /assessments *body*, in all and by process."""
    workdir.mkdir(parents=True, exist_ok=True)
    with servers.service(workdir) as service:
        url = f"{servers.base_url(service)}/assessments"
        for warmup in bodies.distinct_srs(WARMUP_REQUESTS, prefix=f"MEM-{workdir.name}"):
            _post(url, warmup, "application/dicom")
        pids = procstat.processes(service.pid)
        before = [procstat.peak_rss_mb(pid) for pid in pids]
        _post(url, body, content_type)
        after = [procstat.peak_rss_mb(pid) for pid in pids]
    added = (sum(after) - sum(before)) * MIB
    return {
        "body_bytes": len(body),
        "peak_rss_mb_before": sum(before),
        "peak_rss_mb_after": sum(after),
        "added_bytes": added,
        "ratio": added / len(body),
        # The serving process first, then its SR reader.
        "added_bytes_by_process": [
            (late - early) * MIB for early, late in zip(before, after, strict=True)
        ],
    }


def measure(workdir: Path) -> dict[str, Any]:
    """The 200-lesion SR and the 1,000-entry Bundle (333 lesions: a BodyStructure, a long
    axis and a baseline-category Observation each, 999 entries)."""
    sr = next(bodies.distinct_srs(1, 200, prefix="MEM-SR"))
    bundle = next(bodies.distinct_bundles(1, 333, prefix="MEM-BUNDLE"))
    return {
        "sr_200_lesions": added_by(workdir / "sr", sr, "application/dicom"),
        "bundle_999_entries": added_by(workdir / "bundle", bundle, "application/fhir+json"),
    }


def _post(url: str, body: bytes, content_type: str) -> None:
    request = urllib.request.Request(url, body, {"Content-Type": content_type}, method="POST")
    with urllib.request.urlopen(request, timeout=120) as answer:
        answer.read()
