"""The README's curl example says what the service really answers."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]


async def test_readme_example_prints_the_real_conclusion(client: httpx.AsyncClient) -> None:
    headers = {"Content-Type": "application/dicom"}
    for name in ("baseline", "follow-up"):
        body = (ROOT / "examples" / f"{name}.dcm").read_bytes()
        response = await client.post("/assessments", content=body, headers=headers)
        assert response.status_code == 200, response.text
    conclusion = response.json()["entry"][0]["resource"]["conclusion"]
    assert conclusion.startswith("RECIST 1.1: PR")
    readme = (ROOT / "README.md").read_text()
    assert f"\n{conclusion}\n" in readme, conclusion


def test_readme_lists_every_setting() -> None:
    from service.config import Settings

    readme = (ROOT / "README.md").read_text()
    missing = [name for name in Settings.model_fields if f"`TR_{name.upper()}`" not in readme]
    assert not missing, f"README configuration table lacks {missing}"
