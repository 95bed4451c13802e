"""Every resource type we emit, checked by independent FHIR R4 validators (issue 5):
``@medplum/core`` ``validateResource`` and fhir.js (npm ``fhir``), run by
``tests/tools/validate_fhir.js``; and the SMART client ``fhirclient`` reading our reports
from the real server over HTTP (``tests/tools/read_reports.js``)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import server as live_server  # noqa: F401  (fixture: the real server)
from tests.fhir_factory import PATIENT_SYSTEM, measurement_bundle

TOOLS = Path(__file__).resolve().parents[1] / "tools"
FHIR = {"Content-Type": "application/fhir+json"}

pytestmark = [
    pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed"),
    pytest.mark.skipif(
        not (TOOLS / "node_modules" / "@medplum" / "core").is_dir(),
        reason="npm packages missing: run bash tests/tools/install.sh",
    ),
]


def _node(script: str, *args: str, stdin: str = "") -> Any:
    done = subprocess.run(
        ["node", str(TOOLS / script), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _emitted(base: str) -> list[dict[str, Any]]:
    """Everything the server emits for a baseline and a follow-up posted as FHIR."""
    found: dict[str, dict[str, Any]] = {}
    for day, sizes in (("2024-01-01", (60, 40)), ("2024-03-01", (42, 28))):
        bundle = measurement_bundle("CONF-1", day, [("T1", sizes[0]), ("T2", sizes[1])])
        answer = httpx.post(f"{base}/fhir", content=json.dumps(bundle), headers=FHIR)
        assert answer.status_code == 200, answer.text
        for entry in answer.json()["entry"]:
            location = entry["response"]["location"].split("/_history")[0]
            found[location] = httpx.get(f"{base}/fhir/{location}").json()
        collection = httpx.post(
            f"{base}/assessments",
            content=json.dumps(measurement_bundle("CONF-1", day, [("T1", sizes[0])], "collection")),
            headers=FHIR,
        )
        found.update({e["fullUrl"]: e["resource"] for e in collection.json()["entry"]})
        found[f"bundle {day}"] = collection.json()
    search = httpx.get(
        f"{base}/fhir/Patient", params={"identifier": f"{PATIENT_SYSTEM}|CONF-1"}
    ).json()
    found["patient search"] = search
    found.update({e["fullUrl"]: e["resource"] for e in search["entry"]})
    found["metadata"] = httpx.get(f"{base}/fhir/metadata").json()
    found["outcome"] = httpx.get(f"{base}/fhir/Observation/unknown").json()
    return list(found.values())


@pytest.mark.e2e
def test_every_emitted_resource_passes_both_validators(live_server: str) -> None:  # noqa: F811
    resources = _emitted(live_server)
    kinds = {resource["resourceType"] for resource in resources}
    assert kinds >= {
        "DiagnosticReport",
        "Observation",
        "BodyStructure",
        "Patient",
        "Bundle",
        "CapabilityStatement",
        "OperationOutcome",
    }
    result = _node("validate_fhir.js", stdin=json.dumps(resources))
    assert result["checked"] == len(resources)
    assert result["errors"] == []


def test_the_validators_do_find_errors() -> None:
    broken = [{"resourceType": "Observation", "status": "done", "code": {}, "bogus": 1}]
    errors = _node("validate_fhir.js", stdin=json.dumps(broken))["errors"]
    assert {error["validator"] for error in errors} == {"medplum", "fhir.js"}


@pytest.mark.e2e
def test_the_smart_client_reads_our_reports(live_server: str) -> None:  # noqa: F811
    for day, sizes in (("2024-01-01", (60, 40)), ("2024-03-01", (42, 28))):
        bundle = measurement_bundle("SMART-1", day, [("T1", sizes[0]), ("T2", sizes[1])])
        answer = httpx.post(f"{live_server}/fhir", content=json.dumps(bundle), headers=FHIR)
        assert answer.is_success, answer.text
    read = _node("read_reports.js", f"{live_server}/fhir", f"{PATIENT_SYSTEM}|SMART-1")
    assert read["version"] == "4.0.1"
    follow_up = read["reports"][1]
    assert follow_up["report"]["effectiveDateTime"] == "2024-03-01"
    overall = next(
        result
        for result in follow_up["results"]
        if result["code"]["coding"][0]["code"] == "C96613"
        and result["method"]["coding"][0]["code"] == "C124415"
    )
    assert overall["valueCodeableConcept"]["coding"][0]["code"] == "C18058"  # PR
