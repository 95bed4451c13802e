"""Orthanc's plain STOW-RS store of the same SRs: the peer the service is compared to.

Orthanc 1.10 binds every interface, so it runs in a private network namespace
(``unshare -rn``) where only its own loopback exists; wrk runs in the same namespace,
and so does a fresh service (``python -m service serve``, as in production) taking
SRs on ``POST /assessments``. :func:`measure_in_namespace` re-runs this module as
``python -m bench.orthanc`` there and reads back the figures it writes as JSON. The
two are measured round by round (:func:`measure.paired`: one run of each, back to
back, in turn first), and the ratio is the median of the rounds' service / Orthanc
throughputs. Orthanc's index and storage are SQLite and files in a temporary directory
(its defaults otherwise). The SRs are distinct (:class:`bodies.Supply`), as many as the
runs send, STOW-RS bodies of one instance for Orthanc: each server stores each once.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import bodies, measure, servers, wrk

PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
PORT = 8042


def missing() -> str | None:
    """Why Orthanc cannot be measured here, or None."""
    for tool in ("Orthanc", "unshare", "ip", "wrk"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not PLUGIN.exists():
        return f"{PLUGIN} is missing (Debian package orthanc-dicomweb)"
    return None


def measure_in_namespace(
    workdir: Path, lesions: int, count: int, protocol: measure.Protocol
) -> dict[str, Any]:
    """Run :func:`main` in a new user + network namespace, with *count* SRs of *lesions*
    lesions to start with for each server; Orthanc's figures, with the service's of
    the same rounds (``service``), each round's service / Orthanc throughput
    (``round_ratios``) and their median (``ratio``)."""
    out = workdir / "orthanc.json"
    command = [
        "unshare", "-rn", sys.executable, "-m", "bench.orthanc",
        "--workdir", str(workdir), "--lesions", str(lesions), "--count", str(count),
        "--out", str(out), "--protocol", json.dumps(dataclasses.asdict(protocol)),
    ]  # fmt: skip
    timeout = 180 + (protocol.warmup_s + protocol.runs * protocol.run_s) * 4
    subprocess.run(command, check=True, timeout=timeout, cwd=servers.REPO)
    found: dict[str, Any] = json.loads(out.read_text())
    return found


def _config(workdir: Path) -> Path:
    config = {
        "Name": "bench",
        "StorageDirectory": str(workdir / "storage"),
        "IndexDirectory": str(workdir / "index"),
        "HttpPort": PORT,
        "RemoteAccessAllowed": True,
        "AuthenticationEnabled": False,
        "DicomServerEnabled": False,
        "Plugins": [str(PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }
    path = workdir / "orthanc.json.conf"
    path.write_text(json.dumps(config))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--lesions", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--protocol", required=True)
    args = parser.parse_args()
    protocol = measure.Protocol(**json.loads(args.protocol))
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    orthanc = servers.Server(
        ["Orthanc", str(_config(args.workdir))],
        f"http://127.0.0.1:{PORT}/system",
        args.workdir / "orthanc.log",
    )
    stow = bodies.Supply(args.workdir / "stow", "stow", args.lesions, args.count)
    stow_load = wrk.Load(
        f"http://127.0.0.1:{PORT}/dicom-web/studies",
        stow.listing,
        bodies.STOW_CONTENT_TYPE,
        accept="application/dicom+json",
    )
    srs = bodies.Supply(args.workdir / "sr", "sr", args.lesions, args.count)
    service_dir = args.workdir / "service"
    service_dir.mkdir(exist_ok=True)
    with orthanc, servers.service(service_dir) as service:
        sr_load = wrk.Load(
            f"{servers.base_url(service)}/assessments", srs.listing, "application/dicom"
        )
        found = measure.paired(
            measure.Target(service.pid, sr_load, measure.Cursor(srs)),
            measure.Target(orthanc.pid, stow_load, measure.Cursor(stow)),
            protocol,
        )
    figures = {
        **found.second.as_dict(),
        "service": found.first.as_dict(),
        "round_ratios": found.round_ratios,
        "ratio": found.ratio,
    }
    args.out.write_text(json.dumps(figures))


if __name__ == "__main__":
    main()
