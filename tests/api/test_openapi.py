"""openapi/openapi.json is what the app serves (regenerate with `make openapi`)."""

from __future__ import annotations

import json
from pathlib import Path

from service.config import Settings
from service.entrypoints.api.app import create_app

COMMITTED = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"


def test_committed_openapi_document_equals_the_served_one() -> None:
    served = create_app(Settings(_env_file=None)).openapi()  # type: ignore[call-arg]
    assert json.loads(COMMITTED.read_text()) == served, "run `make openapi` and commit"
