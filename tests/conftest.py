"""Shared fixtures: a clean TR_* environment and an empty database for every test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from service.adapters import db
from tests.databases import backend, fresh_database


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No developer TR_* variable leaks into a test (httpx's clean_environ)."""
    for name in list(os.environ):
        if name.startswith("TR_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TR_DIMSE_PORT", "0")  # no listener unless a test asks for one
    # SRs read in the process under test (a companion process takes ~1 s to start):
    # tests/contract/test_read_process.py and the e2e servers read them in one.
    monkeypatch.setenv("TR_SR_READ_PROCESS", "false")
    yield


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """An empty database of this run's backend (tests/databases.py), for this test only."""
    with fresh_database(tmp_path) as url:
        yield url


@pytest.fixture
def migrated_engine(database_url: str) -> Iterator[Engine]:
    """An engine on :func:`database_url`, migrated to the latest schema."""
    engine = db.create_engine(database_url)
    db.migrate(engine)
    yield engine
    engine.dispose()


def pytest_runtest_setup(item: pytest.Item) -> None:
    """``sqlite_only`` tests check what only SQLite has (pragmas, files)."""
    marker = item.get_closest_marker("sqlite_only")
    if marker is not None and backend() != "sqlite":
        pytest.skip(f"SQLite only: {marker.args[0] if marker.args else 'SQLite behaviour'}")
