"""Unauthenticated information routes: `GET /`, `GET /api/v1`, `GET /ping`
(shared/spec/openwhisk.md §1, §2.1)."""

from __future__ import annotations

import httpx
import pytest

from controller.limits import MB
from controller.settings import Settings


async def test_root_lists_runtimes_for_clients(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200, response.text
    runtimes = response.json()["runtimes"]
    nodejs = {rt["kind"]: rt for rt in runtimes["nodejs"]}
    python = {rt["kind"]: rt for rt in runtimes["python"]}
    assert nodejs["nodejs:22"]["default"] is True
    assert set(nodejs) == {f"nodejs:{major}" for major in (18, 20, 22, 24, 26)}
    assert not any(rt["deprecated"] for rt in nodejs.values())
    assert "python:3.11" in python
    for runtime in [*nodejs.values(), *python.values()]:
        assert {"kind", "image", "deprecated", "default", "attached", "requireMain"} <= set(runtime)
        assert runtime["image"]
    assert sum(rt["default"] for rt in runtimes["nodejs"]) == 1


async def test_root_reports_limits_with_memory_and_logs_in_bytes(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    body = (await client.get("/")).json()
    limits = settings.limits
    assert body["api_paths"] == ["/api/v1"]
    assert body["limits"] == {
        "actions_per_minute": limits.invocations_per_minute,
        "triggers_per_minute": limits.fires_per_minute,
        "concurrent_actions": limits.concurrent_invocations,
        "sequence_length": limits.sequence_max_length,
        "min_action_duration": limits.timeout_min,
        "max_action_duration": limits.timeout_max,
        "min_action_memory": 128 * MB,
        "max_action_memory": 4096 * MB,
        "min_action_logs": 0,
        "max_action_logs": 10 * MB,
    }


@pytest.mark.parametrize("path", ["/api/v1", "/api/v1/"])
async def test_api_info_has_the_build_wsk_reads(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["description"] == "OpenWhisk API"
    assert body["api_version"] == "1.0.0"
    assert body["api_version_path"] == "v1"
    assert isinstance(body["build"], str) and body["build"]
    assert isinstance(body["buildno"], str) and body["buildno"]


async def test_ping_answers_pong(client: httpx.AsyncClient) -> None:
    response = await client.get("/ping")
    assert response.status_code == 200
    assert response.text == "pong"


@pytest.mark.parametrize("path", ["/", "/api/v1", "/ping"])
async def test_info_routes_ignore_bad_credentials(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path, headers={"Authorization": "Basic bm9ib2R5Om5vdGhpbmc="})
    assert response.status_code == 200, response.text
