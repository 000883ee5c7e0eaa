"""`homerun standalone`, as the README runs it: one command serves node and python actions."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(params=["process", pytest.param("docker", marks=pytest.mark.docker)])
def standalone(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """A running `homerun standalone` with a fresh data directory; yields (url, banner)."""
    data = Path(tempfile.mkdtemp(prefix="hrsa", dir="/tmp"))
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("HOMERUN_")} | {
        "HOMERUN_DATA_DIR": str(data),
        "HOMERUN_PORT": str(port),
        "HOMERUN_INVOKER_SANDBOX": request.param,
    }
    output = data / "standalone.log"
    with output.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "homerun.cli", "standalone"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 240  # docker may build images on a first start
        text = ""
        while time.monotonic() < deadline and process.poll() is None:
            text = output.read_text()
            if "actions/hello -H" in text:
                break
            time.sleep(0.2)
        assert "serving on" in text, text
        if request.param == "docker":
            assert "using the docker sandbox" in text, text
        yield f"http://127.0.0.1:{port}", text
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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
