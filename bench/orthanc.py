"""Orthanc's plain STOW-RS store of the same SRs: the peer the service is compared to.

Orthanc 1.10 binds every interface, so it runs in a private network namespace
(``unshare -rn``) where only its own loopback exists; wrk runs in the same namespace.
:func:`measure_in_namespace` re-runs this module as ``python -m bench.orthanc`` there
and reads back the figures it writes as JSON. Index and storage are SQLite and files
in a temporary directory (Orthanc's defaults otherwise). The SRs are distinct STOW-RS
bodies (:class:`bodies.Supply`), as many as the runs send: Orthanc stores each once.
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
    """Run :func:`main` in a new user + network namespace, with *count* STOW-RS bodies
    of *lesions* lesions to start with; its figures."""
    out = workdir / "orthanc.json"
    command = [
        "unshare", "-rn", sys.executable, "-m", "bench.orthanc",
        "--workdir", str(workdir), "--lesions", str(lesions), "--count", str(count),
        "--out", str(out), "--protocol", json.dumps(dataclasses.asdict(protocol)),
    ]  # fmt: skip
    timeout = 120 + (protocol.warmup_s + protocol.runs * protocol.run_s) * 2
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
    load = wrk.Load(
        f"http://127.0.0.1:{PORT}/dicom-web/studies",
        stow.listing,
        bodies.STOW_CONTENT_TYPE,
        accept="application/dicom+json",
    )
    with orthanc:
        figures = measure.measure(orthanc.pid, load, measure.Cursor(stow), protocol)
    args.out.write_text(json.dumps(figures.as_dict()))


if __name__ == "__main__":
    main()
