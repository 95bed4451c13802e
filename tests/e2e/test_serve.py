"""``tumour-response serve`` and ``migrate`` as a deployment runs them (README "Deploying"):
the concurrency limit answers 503 (reliability.md section 5), ``migrate`` brings an empty
database to the latest revision once and is a no-op after."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from service.adapters import db
from tests.e2e.conftest import running_server

pytestmark = pytest.mark.e2e


def test_beyond_the_concurrency_limit_the_answer_is_503(tmp_path: Path, database_url: str) -> None:
    with (
        running_server(tmp_path, database_url, TR_HTTP_LIMIT_CONCURRENCY="2") as base,
        httpx.Client(base_url=base, timeout=10) as first,
    ):
        assert first.get("/health").status_code == 200  # one connection: under the limit
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))):  # a second, idle connection
            time.sleep(0.3)
            assert first.get("/health").status_code == 503
        time.sleep(0.3)
        assert first.get("/health").status_code == 200


def _migrate(database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TR_DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "service", "migrate"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_migrate_brings_an_empty_database_to_the_head_revision_once(database_url: str) -> None:
    for _ in range(2):  # the second run finds nothing to do
        done = _migrate(database_url)
        assert done.returncode == 0, done.stderr
        (line,) = [json.loads(text) for text in done.stderr.splitlines()]
        assert line["message"] == "database schema at the latest revision"
    head = ScriptDirectory.from_config(db._alembic_config()).get_current_head()
    engine = db.create_engine(database_url)
    with engine.connect() as connection:
        versions = connection.execute(sa.text("SELECT version_num FROM alembic_version")).all()
        tables = set(sa.inspect(connection).get_table_names())
    engine.dispose()
    assert versions == [(head,)]
    assert {"patient", "document"} <= tables
