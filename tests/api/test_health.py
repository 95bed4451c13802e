"""Probes and the error shape of unknown routes."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy
from fastapi import FastAPI

pytestmark = pytest.mark.anyio


async def test_health_answers_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_answers_when_the_database_does(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")
    assert response.status_code == 200


async def test_unknown_route_is_a_404_operation_outcome(client: httpx.AsyncClient) -> None:
    response = await client.get("/nowhere")
    assert response.status_code == 404
    assert response.json()["issue"][0]["code"] == "not-found"


async def test_wrong_method_is_a_405_operation_outcome(client: httpx.AsyncClient) -> None:
    response = await client.get("/assessments")
    assert response.status_code == 405
    assert response.json()["resourceType"] == "OperationOutcome"


async def test_ready_is_503_with_retry_after_when_the_database_is_gone(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    app.state.engine = sqlalchemy.create_engine("sqlite:////proc/no-such-dir/x.db")
    response = await client.get("/ready")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["issue"][0]["code"] == "transient"
