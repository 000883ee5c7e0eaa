"""Blackbox actions: a local image serving /init and /run on TCP 8080 in a network namespace of
its own, reached through a relay container on a unix socket, and only when the operator allows
the image (HOMERUN_BLACKBOX_IMAGES). Needs the docker sandbox."""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from invoker.docker_sandbox import LABEL, DockerSandbox
from invoker.sandbox import ContainerSpec, ImageRefused
from tests.conftest import Engine, make_sandbox

pytestmark = pytest.mark.docker

IMAGE = "homerun-test/blackbox:latest"
ALLOWED = ("homerun-test/*",)
REFUSED = "elsewhere/box:1"
# Answers with the network interfaces it sees, and what it was given.
INTERFACES = """
const fs = require('fs');
function main(p) {
  const lines = fs.readFileSync('/proc/net/dev', 'utf8').trim().split('\\n').slice(2);
  return {interfaces: lines.map((line) => line.split(':')[0].trim()).sort(), got: p.x};
}
"""


@pytest.fixture
def sandbox_kind() -> str:
    return "docker"


@pytest.fixture
def blackbox_images() -> tuple[str, ...]:
    return ALLOWED


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


BASE = "/api/v1/namespaces/_/actions"


async def put_blackbox(engine: Engine, name: str, image: str, code: str | None = None) -> Any:
    exec_ = {"kind": "blackbox", "image": image, **({"code": code} if code else {})}
    return await engine.client.put(
        f"{BASE}/{name}", json={"exec": exec_}, headers=await basic_headers(engine)
    )


async def invoke(engine: Engine, name: str, **params: Any) -> Any:
    return await engine.client.post(
        f"{BASE}/{name}", params={"blocking": "true"}, json=params,
        headers=await basic_headers(engine), timeout=120,
    )  # fmt: skip


def published_ports(image: str) -> list[str]:
    listed = subprocess.run(
        ["docker", "ps", "--filter", f"ancestor={image}", "--format", "{{.Ports}}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [port for port in listed.replace(",", " ").split() if "->" in port]


@pytest.mark.parametrize(
    ("docker_options", "interfaces"),
    [
        ({"blackbox_images": ALLOWED}, ["lo"]),
        ({"blackbox_images": ALLOWED, "network": True}, ["eth0", "lo"]),
    ],
    ids=["no-egress", "egress"],
)
async def test_blackbox_action_runs_with_the_network_it_is_given(
    engine: Engine, blackbox_image: str, interfaces: list[str]
) -> None:
    created = await put_blackbox(engine, "box", blackbox_image, INTERFACES)
    assert created.status_code == 200, created.text
    assert created.json()["exec"]["image"] == blackbox_image
    for x in (7, 8):  # cold (/init then /run), then warm
        response = await invoke(engine, "box", x=x)
        assert response.status_code == 200, response.text
        assert response.json()["response"]["result"] == {"interfaces": interfaces, "got": x}
    assert published_ports(blackbox_image) == [], "no port is published, not even on loopback"


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[DockerSandbox]:
    invoker_id = f"box-{secrets.token_hex(4)}"
    box: DockerSandbox = make_sandbox("docker", tmp_path, invoker_id, blackbox_images=ALLOWED)
    yield box
    await box.close()


def labelled(invoker_id: str) -> list[str]:
    client = docker.from_env(timeout=30)
    try:
        found = client.containers.list(all=True, filters={"label": f"{LABEL}={invoker_id}"})
        return sorted(str(c.labels["homerun.kind"]) for c in found)
    finally:
        client.close()


def socket_dirs(sandbox: DockerSandbox) -> list[Path]:
    """The containers' socket directories (not the API relay's, which lives beside them)."""
    return [d for d in sandbox.socket_root.iterdir() if d != sandbox.api.path.parent]


async def test_the_relay_is_the_only_way_in_and_goes_with_its_blackbox(
    sandbox: DockerSandbox, blackbox_image: str
) -> None:
    container = await sandbox.start(ContainerSpec("blackbox", blackbox_image, 128, "relayed"))
    try:
        assert labelled(sandbox.invoker_id) == ["blackbox", "relay"]
        (socket_dir,) = socket_dirs(sandbox)
        assert [entry.name for entry in socket_dir.iterdir()] == ["action.sock"]
        assert socket_dir.stat().st_mode & 0o777 == 0o755, "sealed once the relay answered"
        init = {"name": "box", "main": "main", "code": INTERFACES, "binary": False}
        assert (await container.init({"value": init}, 30)).status == 200
        run = await container.run({"value": {"x": 1}}, 30)
        assert (run.status, json.loads(run.body)) == (200, {"interfaces": ["lo"], "got": 1})
    finally:
        await container.destroy()
    assert labelled(sandbox.invoker_id) == []
    assert socket_dirs(sandbox) == []


FILL = """
const fs = require('fs');
function fill(path, mb) {
  const chunk = Buffer.alloc(1 << 20);
  let written = 0;
  try {
    const fd = fs.openSync(path, 'w');
    for (; written < mb; written++) fs.writeSync(fd, chunk);
    fs.closeSync(fd);
  } catch (err) { return {written, error: err.code}; }
  return {written, error: null};
}
function main(p) { return {root: fill('/filled', p.mb), tmp: fill('/tmp/filled', p.mb)}; }
"""


@pytest.mark.parametrize("writable_root", [False, True], ids=["bounded", "writable-root"])
async def test_what_a_blackbox_writes_is_bounded_unless_the_operator_allows_its_root(
    sandbox: DockerSandbox, blackbox_image: str, writable_root: bool
) -> None:
    sandbox.tmpfs_mb, sandbox.blackbox_writable_root = 16, writable_root
    container = await sandbox.start(ContainerSpec("blackbox", blackbox_image, 128, "filler"))
    try:
        init = {"name": "fill", "main": "main", "code": FILL, "binary": False}
        assert (await container.init({"value": init}, 30)).status == 200
        run = await container.run({"value": {"mb": 32}}, 60)
        found = json.loads(run.body)
    finally:
        await container.destroy()
    if not writable_root or sandbox._root_quota:  # a sized /tmp and a read-only root, or a quota
        assert found["tmp"]["written"] <= 16 and found["tmp"]["error"] == "ENOSPC", found
        assert found["root"]["written"] <= 16 and found["root"]["error"], found
    else:  # as the operator asked: its image's /tmp, on a root without a bound
        assert found["tmp"] == {"written": 32, "error": None}, found


async def test_a_refused_image_starts_nothing(sandbox: DockerSandbox, blackbox_image: str) -> None:
    with pytest.raises(ImageRefused):
        await sandbox.start(ContainerSpec("blackbox", REFUSED, 128, "refused"))
    sandbox.blackbox_images = ()  # nothing is allowed by default
    with pytest.raises(ImageRefused):
        await sandbox.start(ContainerSpec("blackbox", blackbox_image, 128, "refused"))
    assert labelled(sandbox.invoker_id) == []
    assert socket_dirs(sandbox) == []


async def test_an_image_the_operator_does_not_allow_is_refused_at_create(engine: Engine) -> None:
    # The OpenWhisk API names images; the seed API's exec has no image, so no blackbox.
    message = (
        f"exec.image: The image '{REFUSED}' is not one blackbox actions may use here: the "
        "operator allows images in HOMERUN_BLACKBOX_IMAGES."
    )
    response = await put_blackbox(engine, "refused", REFUSED)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == message
    allowed = await put_blackbox(engine, "refused", "homerun-test/box:1")
    assert allowed.status_code == 200, allowed.text
    updated = await engine.client.put(
        f"{BASE}/refused", params={"overwrite": "true"}, headers=await basic_headers(engine),
        json={"exec": {"kind": "blackbox", "image": REFUSED}},
    )  # fmt: skip
    assert updated.status_code == 400, updated.text
    assert updated.json()["error"] == message


@pytest.mark.parametrize("docker_options", [{"blackbox_images": ("homerun-test/other:*",)}])
async def test_an_image_the_invoker_does_not_allow_is_a_recorded_error(
    engine: Engine, blackbox_image: str
) -> None:
    # The controller allows the image, this invoker does not: it is the boundary.
    assert (await put_blackbox(engine, "box", blackbox_image)).status_code == 200
    response = await invoke(engine, "box")
    assert response.status_code == 502, response.text
    error = (
        f"The image '{blackbox_image}' is not one blackbox actions may use on this invoker: "
        "the operator allows images in HOMERUN_BLACKBOX_IMAGES."
    )
    assert response.json()["response"]["result"] == {"error": error}
    record = await engine.activation(response.json()["activationId"])
    assert record is not None
    assert published_ports(blackbox_image) == []
    assert labelled(engine.worker.id) == []


async def test_missing_image_is_a_developer_error(engine: Engine) -> None:
    assert (await put_blackbox(engine, "none", "homerun-test/absent:1")).status_code == 200
    response = await invoke(engine, "none")
    assert response.status_code == 502, response.text
    assert response.json()["response"]["result"] == {
        "error": "Failed to pull container image 'homerun-test/absent:1'."
    }
