"""A real Orthanc (Debian ``orthanc`` + ``orthanc-dicomweb``) forwards SRs to the real
service by C-STORE and by STOW-RS (issue 4; interop.md 4.3).

Orthanc cannot bind to loopback only, so both processes run in a private user + network
namespace (``unshare -rn``) whose ``lo`` is brought up first; see
``tests/e2e/orthanc_scenario.py`` for what runs inside.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.orthanc_scenario import DICOMWEB_PLUGIN

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("Orthanc") is None, reason="Debian orthanc not installed"),
    pytest.mark.skipif(not Path(DICOMWEB_PLUGIN).exists(), reason="orthanc-dicomweb missing"),
    pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare (util-linux) missing"),
    pytest.mark.sqlite_only("the service runs in a network namespace PostgreSQL is not in"),
]

ROOT = Path(__file__).resolve().parents[2]


def _scenario(tmp_path: Path, *args: str) -> tuple[dict[str, Any], str]:
    """Run orthanc_scenario in the namespace; its outcome and the processes' logs."""
    inside = f'ip link set lo up && exec "{sys.executable}" -m tests.e2e.orthanc_scenario "$@"'
    result = subprocess.run(
        ["unshare", "-rn", "sh", "-c", inside, "sh", str(tmp_path), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    logs = "".join(
        f"\n--- {log.name}\n{log.read_text(errors='replace')[-3000:]}"
        for log in tmp_path.glob("*.log")
    )
    assert result.returncode == 0, result.stderr[-3000:] + logs
    outcome: dict[str, Any] = json.loads(result.stdout)
    return outcome, logs


def test_orthanc_forwards_by_cstore_and_by_stow(tmp_path: Path) -> None:
    outcome, logs = _scenario(tmp_path)
    for route in ("C-STORE", "STOW-RS"):
        assert outcome[route]["orthanc_status"] == 200, outcome[route]["orthanc_answer"] + logs
        assert outcome[route]["version"] == 1, (route, logs)  # stored and assessed


def test_the_deploy_orthanc_config_forwards_stored_srs_by_its_lua_script(tmp_path: Path) -> None:
    outcome, logs = _scenario(tmp_path, "deploy")
    assert outcome["orthanc_status"] == 200, logs
    assert outcome["version"] == 1, logs  # forwarded by OnStoredInstance, stored and assessed
