"""Orthanc forwards SRs to the service, by C-STORE and by STOW-RS; run by
``test_orthanc.py`` inside a private network namespace.

Orthanc 1.10 binds its HTTP and DICOM ports on every interface, so the test runs this
module under ``unshare -rn`` (a user and network namespace with only ``lo``, brought
up by the caller): Orthanc and the service talk over that namespace's loopback and
nothing is reachable from outside it. The module starts the service (HTTP + DIMSE)
and Orthanc with a configuration in *workdir* (SQLite index and storage there, the
service as DICOM modality ``us`` and DICOMweb server ``us``), uploads two SRs to Orthanc
over its REST API, asks Orthanc to forward one with ``/modalities/us/store`` and the
other with ``/dicom-web/servers/us/stow``, and prints what happened as JSON for the
test to check. Usage: ``python -m tests.e2e.orthanc_scenario WORKDIR``.

With ``deploy`` after WORKDIR it runs Orthanc with ``deploy/orthanc/orthanc.json`` instead
(ports, folders and the service's host adapted) and checks that an SR uploaded to Orthanc
reaches the service through the shipped Lua script alone (README "Deploying").
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import httpx

from service.adapters import db
from service.domain.model import DEFAULT_PATIENT_SYSTEM, PatientIdentity
from tests.e2e.conftest import free_port, running_server
from tests.sr_factory import LesionSpec, make_sr, sr_bytes

DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
STARTUP_SECONDS = 60
DATABASE = "sqlite:///{}/e2e.db"  # a file: PostgreSQL is outside the namespace
ROUTES = {"C-STORE": "ORTHANC-DIMSE", "STOW-RS": "ORTHANC-STOW"}  # route -> patient id
AUTOROUTED = "ORTHANC-LUA"
DEPLOY_ORTHANC = Path(__file__).resolve().parents[2] / "deploy" / "orthanc"


def _orthanc_config(workdir: Path, http_port: int, dicom_port: int, us: str, dimse: int) -> Path:
    config = {
        "Name": "tumour-response-e2e",
        "StorageDirectory": str(workdir / "orthanc-storage"),
        "IndexDirectory": str(workdir / "orthanc-index"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": "ORTHANC",
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "Plugins": [DICOMWEB_PLUGIN],
        "DicomModalities": {"us": ["TUMOUR_RESPONSE", "127.0.0.1", dimse]},
        "DicomWeb": {"Enable": True, "Servers": {"us": [f"{us}/dicomweb/"]}},
    }
    path = workdir / "orthanc.json"
    path.write_text(json.dumps(config))
    return path


def _wait(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Orthanc exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("Orthanc did not start")


def _stored_version(database_url: str, patient_id: str) -> int | None:
    """The version of the patient's DiagnosticReport of 2024-01-05 (its timepoint
    result's), None when there is none."""
    engine = db.create_engine(database_url)
    day = date(2024, 1, 5)
    try:
        with db.open_store(engine) as store:
            found = store.search_resources(
                "DiagnosticReport",
                patient=PatientIdentity(DEFAULT_PATIENT_SYSTEM, patient_id),
                since=day,
                until=day,
            )
        return found[0].version if found else None
    finally:
        engine.dispose()


@contextmanager
def _orthanc(workdir: Path, config: Path, http_port: int) -> Iterator[str]:
    """Run Orthanc with *config*; yield its REST base URL."""
    log = (workdir / "orthanc.log").open("wb")
    orthanc = subprocess.Popen(["Orthanc", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{http_port}"
        _wait(f"{base}/system", orthanc)
        yield base
    finally:
        orthanc.terminate()
        orthanc.wait(timeout=30)
        log.close()


def run(workdir: Path) -> dict[str, Any]:
    dimse = free_port()
    outcome: dict[str, Any] = {}
    with running_server(workdir, DATABASE.format(workdir), TR_DIMSE_PORT=str(dimse)) as us:
        http_port, dicom_port = free_port(), free_port()
        config = _orthanc_config(workdir, http_port, dicom_port, us, dimse)
        with _orthanc(workdir, config, http_port) as base:
            for route, patient in ROUTES.items():
                sr = make_sr(
                    patient_id=patient,
                    study_date="20240105",
                    lesions=[LesionSpec("T1", long_axis_mm=30)],
                )
                uploaded = httpx.post(f"{base}/instances", content=sr_bytes(sr), timeout=30)
                resource = uploaded.json()["ID"]
                target = (
                    f"{base}/modalities/us/store"
                    if route == "C-STORE"
                    else f"{base}/dicom-web/servers/us/stow"
                )
                forwarded = httpx.post(
                    target, json={"Resources": [resource], "Synchronous": True}, timeout=60
                )
                outcome[route] = {
                    "orthanc_status": forwarded.status_code,
                    "orthanc_answer": forwarded.text,
                    "version": _stored_version(DATABASE.format(workdir), patient),
                }
    return outcome


def _deploy_config(workdir: Path, http_port: int, dicom_port: int, dimse: int) -> Path:
    """deploy/orthanc/orthanc.json as shipped, with this run's ports, folders and hosts:
    its modality entry (AE title) and its forwarding script are kept."""
    config = json.loads((DEPLOY_ORTHANC / "orthanc.json").read_text())
    (modality,) = config["DicomModalities"]
    aet = config["DicomModalities"][modality][0]
    config.update(
        StorageDirectory=str(workdir / "orthanc-storage"),
        IndexDirectory=str(workdir / "orthanc-index"),
        HttpPort=http_port,
        DicomPort=dicom_port,
        RemoteAccessAllowed=False,
        AuthenticationEnabled=False,
        DicomModalities={modality: [aet, "127.0.0.1", dimse]},
        LuaScripts=[str(DEPLOY_ORTHANC / Path(script).name) for script in config["LuaScripts"]],
    )
    path = workdir / "orthanc-deploy.json"
    path.write_text(json.dumps(config))
    return path


def run_deploy_forwarding(workdir: Path) -> dict[str, Any]:
    """An SR uploaded to Orthanc (REST) reaches the service by the deploy/ Lua script alone."""
    dimse = free_port()
    with running_server(workdir, DATABASE.format(workdir), TR_DIMSE_PORT=str(dimse)):
        http_port, dicom_port = free_port(), free_port()
        config = _deploy_config(workdir, http_port, dicom_port, dimse)
        with _orthanc(workdir, config, http_port) as base:
            sr = make_sr(
                patient_id=AUTOROUTED, study_date="20240105", lesions=[LesionSpec("T1", 30)]
            )
            uploaded = httpx.post(f"{base}/instances", content=sr_bytes(sr), timeout=30)
            deadline = time.monotonic() + STARTUP_SECONDS
            version = None
            while version is None and time.monotonic() < deadline:
                time.sleep(0.5)
                version = _stored_version(DATABASE.format(workdir), AUTOROUTED)
    return {"orthanc_status": uploaded.status_code, "version": version}


if __name__ == "__main__":
    scenario = run_deploy_forwarding if sys.argv[2:] == ["deploy"] else run
    json.dump(scenario(Path(sys.argv[1])), sys.stdout)
