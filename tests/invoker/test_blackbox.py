"""Blackbox actions: a local image serving /init and /run on TCP 8080, reached through a port
published on 127.0.0.1 only. Needs the docker sandbox."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterator

import pytest

from tests.conftest import Engine

pytestmark = pytest.mark.docker

IMAGE = "homerun-test/blackbox:latest"


@pytest.fixture
def sandbox_kind() -> str:
    return "docker"


@pytest.fixture(scope="module")
def blackbox_image() -> Iterator[str]:
    """Our node runtime image, re-configured to listen on TCP 8080 like a standard OpenWhisk
    runtime image (made locally: nothing is pulled)."""
    created = subprocess.run(
        ["docker", "create", "homerun/action-nodejs-v18:latest"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    try:
        subprocess.run(
            ["docker", "commit", "-c", "ENV HOMERUN_TCP_PORT=8080", "-c", "EXPOSE 8080",
             created, IMAGE],
            capture_output=True, check=True,
        )  # fmt: skip
    finally:
        subprocess.run(["docker", "rm", created], capture_output=True, check=False)
    yield IMAGE
    subprocess.run(["docker", "rmi", "-f", IMAGE], capture_output=True, check=False)


async def basic_headers(engine: Engine) -> dict[str, str]:
    namespace = await engine.client.get(
        "/runtime/admin/namespaces/acme/int1", headers=engine.headers
    )
    token = base64.b64encode(namespace.json()["auth"].encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def test_blackbox_action_runs(engine: Engine, blackbox_image: str) -> None:
    headers = await basic_headers(engine)
    base = "/api/v1/namespaces/_/actions"
    body = {
        "exec": {
            "kind": "blackbox",
            "image": blackbox_image,
            "code": "function main(p) { return {box: true, got: p.x}; }",
        }
    }
    created = await engine.client.put(f"{base}/box", json=body, headers=headers)
    assert created.status_code == 200, created.text
    assert created.json()["exec"]["image"] == blackbox_image
    response = await engine.client.post(
        f"{base}/box", params={"blocking": "true", "result": "true"}, json={"x": 7},
        headers=headers, timeout=120,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json() == {"box": True, "got": 7}
    ports = subprocess.run(
        ["docker", "ps", "--filter", f"ancestor={blackbox_image}", "--format", "{{.Ports}}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "127.0.0.1:" in ports and "0.0.0.0:" not in ports, ports


async def test_missing_image_is_a_developer_error(engine: Engine) -> None:
    headers = await basic_headers(engine)
    base = "/api/v1/namespaces/_/actions"
    body = {"exec": {"kind": "blackbox", "image": "homerun-test/absent:1"}}
    assert (await engine.client.put(f"{base}/none", json=body, headers=headers)).status_code == 200
    response = await engine.client.post(
        f"{base}/none", params={"blocking": "true"}, json={}, headers=headers, timeout=120
    )
    assert response.status_code == 502, response.text
    assert response.json()["response"]["result"] == {
        "error": "Failed to pull container image 'homerun-test/absent:1'."
    }
