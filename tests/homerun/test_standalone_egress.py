"""What an action in a docker container can reach: the Homerun API at its `__OW_API_HOST`
(through the invoker's API relay), with or without egress, and none of the host's other
loopback services (Redis, the standalone's own port, the Docker socket). With
`HOMERUN_INVOKER_NETWORK=true` the container has a route out; without, none."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.homerun.support import Standalone, running

pytestmark = [pytest.mark.slow, pytest.mark.docker]

OW = "/api/v1/namespaces/_"

# Uses the preinstalled `openwhisk` client as an App Builder action would.
NODE_PROBE = """
const fs = require('fs');
const net = require('net');
const openwhisk = require('openwhisk');

function reach(host, port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.setTimeout(3000);
    socket.on('connect', () => { socket.destroy(); resolve('open'); });
    socket.on('error', (err) => resolve(err.code));
    socket.on('timeout', () => { socket.destroy(); resolve('timeout'); });
  });
}

async function main(params) {
  const ow = openwhisk();
  const listed = await ow.actions.list();
  const echoed = await ow.actions.invoke({ name: 'echo', blocking: true, result: true,
    params: { n: 7 } });
  const fired = await ow.triggers.invoke({ name: 'tick', params: { from: 'probe' } });
  const routes = fs.readFileSync('/proc/net/route', 'utf8').trim().split('\\n').slice(1);
  return {
    apiHost: process.env.__OW_API_HOST,
    actions: listed.map((a) => a.name).sort(),
    echoed,
    fired: fired.activationId,
    redis: await reach('127.0.0.1', 6379),
    standalone: await reach('127.0.0.1', params.port),
    dockerSocket: fs.existsSync('/var/run/docker.sock'),
    defaultRoute: routes.some((line) => line.split('\\t')[1] === '00000000'),
  };
}
"""

# The same door from the python runtime, with the standard library's HTTP client.
PYTHON_PROBE = """
import base64, json, os, socket, urllib.request

def main(args):
    key = base64.b64encode(os.environ['__OW_API_KEY'].encode()).decode()
    request = urllib.request.Request(
        os.environ['__OW_API_HOST'] + '/api/v1/namespaces/_/actions/echo?blocking=true&result=true',
        data=json.dumps({'n': 8}).encode(), method='POST',
        headers={'Authorization': 'Basic ' + key, 'Content-Type': 'application/json'})
    with urllib.request.urlopen(request, timeout=30) as response:
        echoed = json.load(response)
    try:
        socket.create_connection(('127.0.0.1', 6379), timeout=3).close()
        redis = 'open'
    except OSError as error:
        redis = type(error).__name__
    return {'echoed': echoed, 'redis': redis}
"""


def put(http: httpx.Client, path: str, body: dict[str, object]) -> None:
    response = http.put(f"{OW}/{path}?overwrite=true", json=body)
    assert response.status_code == 200, response.text


@pytest.fixture(scope="module", params=[False, True], ids=["no-egress", "egress"])
def server(request: pytest.FixtureRequest) -> Iterator[tuple[Standalone, bool]]:
    egress: bool = request.param
    with running("docker", HOMERUN_INVOKER_NETWORK=str(egress).lower()) as server:
        yield server, egress


@pytest.fixture(scope="module")
def ow(server: tuple[Standalone, bool]) -> Iterator[httpx.Client]:
    standalone, _ = server
    user, _, password = standalone.value("guest auth").partition(":")
    with httpx.Client(base_url=standalone.url, auth=(user, password), timeout=120) as http:
        provide = [{"key": "provide-api-key", "value": True}]
        put(http, "actions/echo", {"exec": {"kind": "nodejs:22", "code":
            "function main(p) { return {n: p.n, from: p.from || null}; }"}})  # fmt: skip
        put(http, "actions/probe", {"exec": {"kind": "nodejs:22", "code": NODE_PROBE},
            "annotations": provide})  # fmt: skip
        put(http, "actions/pyprobe", {"exec": {"kind": "python:3.11", "code": PYTHON_PROBE},
            "annotations": provide})  # fmt: skip
        put(http, "triggers/tick", {})
        put(http, "rules/on-tick", {"trigger": "/_/tick", "action": "/_/echo"})
        yield http


def invoke(http: httpx.Client, name: str, params: dict[str, object]) -> dict[str, object]:
    response = http.post(f"{OW}/actions/{name}?blocking=true&result=true", json=params)
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result


def test_a_node_action_reaches_the_api_and_nothing_else_on_the_host(
    server: tuple[Standalone, bool], ow: httpx.Client
) -> None:
    standalone, egress = server
    result = invoke(ow, "probe", {"port": standalone.port})
    assert result["apiHost"] == "http://127.0.0.1:3233", result
    assert result["actions"] == ["echo", "probe", "pyprobe"], result
    assert result["echoed"] == {"n": 7, "from": None}, result
    assert isinstance(result["fired"], str) and len(result["fired"]) == 32, result
    # The host's loopback services are not the container's.
    assert result["redis"] == "ECONNREFUSED", result
    assert result["standalone"] == "ECONNREFUSED", result
    assert result["dockerSocket"] is False, result
    assert result["defaultRoute"] is egress, result
    # The trigger the action fired ran its rule's action.
    rules = [json.loads(line) for line in trigger_activation(ow, str(result["fired"]))["logs"]]
    assert [(r["action"], r["success"]) for r in rules] == [("guest/echo", True)], rules


def trigger_activation(http: httpx.Client, activation_id: str) -> dict[str, Any]:
    """The trigger's activation, once recorded (firing answers before the rules ran)."""
    deadline = time.monotonic() + 30
    while True:
        response = http.get(f"{OW}/activations/{activation_id}")
        if response.status_code == 200 or time.monotonic() > deadline:
            assert response.status_code == 200, response.text
            record: dict[str, Any] = response.json()
            return record
        time.sleep(0.2)


def test_a_python_action_reaches_the_api_too(ow: httpx.Client) -> None:
    result = invoke(ow, "pyprobe", {})
    assert result["echoed"] == {"n": 8, "from": None}, result
    assert result["redis"] == "ConnectionRefusedError", result
