"""`homerun standalone`, as the README runs it: one command serves node and python actions."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.homerun.support import running

pytestmark = pytest.mark.slow


@pytest.fixture(params=["process", pytest.param("docker", marks=pytest.mark.docker)])
def standalone(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """A running `homerun standalone` with a fresh data directory; yields (url, banner)."""
    with running(request.param) as server:
        yield server.url, server.banner


def test_standalone_serves_node_and_python(standalone: tuple[str, str]) -> None:
    url, banner = standalone
    token = re.search(r"operator token\s+(\S+)", banner)
    key = re.search(r"operator API key\s+(\S+)", banner)
    auth = re.search(r"guest auth\s+(\S+:\S+)", banner)
    assert token and key and auth, banner
    headers = {"Authorization": f"Bearer {token[1]}", "X-Api-Key": key[1]}
    seed = f"{url}/runtime/namespaces/guest/guest/actions"
    actions = {
        "hello_node": ("nodejs:18", "function main(p) { return {hi: p.name, rt: 'node'}; }"),
        "hello_py": (
            "python:3.11",
            "def main(args):\n    return {'hi': args['name'], 'rt': 'py'}\n",
        ),
    }
    with httpx.Client(headers=headers, timeout=120) as http:
        for name, (kind, code) in actions.items():
            body = {"name": name, "code": code, "exec": {"kind": kind}}
            assert http.post(seed, json=body).status_code == 200
            response = http.post(f"{seed}/{name}", json={"name": "you"})
            assert response.status_code == 200, response.text
            result = response.json()["response"]["result"]
            assert result == {"hi": "you", "rt": "node" if kind.startswith("node") else "py"}
