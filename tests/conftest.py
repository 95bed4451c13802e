"""Shared fixtures: a clean TR_* environment for every test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No developer TR_* variable leaks into a test (httpx's clean_environ)."""
    for name in list(os.environ):
        if name.startswith("TR_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TR_DIMSE_PORT", "0")  # no listener unless a test asks for one
    yield
