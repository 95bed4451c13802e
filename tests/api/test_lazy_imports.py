"""The libraries of the reports and of the SR write-back (matplotlib, fpdf, highdicom:
~65 MB of a worker and ~1.2 s of its start, issue 7) are imported at their first use,
not with the service; each of those paths still works in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.sr_factory import one_lesion_sr, sr_bytes

# Run in a process of its own: the test process has them all imported already.
_SCRIPT = """
import asyncio, json, sys
import httpx
from service.config import Settings
from service.entrypoints.api.app import create_app

HEAVY = ("matplotlib", "fpdf", "highdicom")


def loaded():
    return sorted(name for name in HEAVY if name in sys.modules)


async def main(url, sr_path):
    settings = Settings(_env_file=None, database_url=url, sr_read_process=False)
    app = create_app(settings)
    steps = {"app": loaded()}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            sr = open(sr_path, "rb").read()
            dicom = {"Content-Type": "application/dicom"}
            answer = await client.post("/assessments", content=sr, headers=dicom)
            report = answer.json()["entry"][0]["resource"]
            steps["assessed"] = [answer.status_code, loaded()]
            for form in report["presentedForm"]:
                page = await client.get(form["url"])
                steps[form["contentType"]] = [page.status_code, loaded()]
            headers = {**dicom, "Accept": "application/dicom"}
            written = await client.post("/assessments", content=sr, headers=headers)
            steps["written"] = [written.status_code, written.content[128:132].decode(), loaded()]
    print(json.dumps(steps))


asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def test_reports_and_sr_writing_load_their_libraries_at_first_use(tmp_path: Path) -> None:
    sr_path = tmp_path / "sr.dcm"
    sr_path.write_bytes(sr_bytes(one_lesion_sr()))
    url = f"sqlite:///{tmp_path / 'lazy.db'}"
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, url, str(sr_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    steps = json.loads(done.stdout.splitlines()[-1])
    assert steps["app"] == []
    assert steps["assessed"] == [200, []]
    assert steps["text/html"] == [200, ["matplotlib"]]  # the charts
    assert steps["application/pdf"] == [200, ["fpdf", "matplotlib"]]
    assert steps["written"] == [200, "DICM", ["fpdf", "highdicom", "matplotlib"]]
