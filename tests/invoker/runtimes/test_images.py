"""The runtime images built offline by deploy/runtimes/build.sh, run with the hardening the docker
sandbox uses and driven over the unix socket in a bind-mounted directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.invoker.runtimes import (
    KINDS,
    MODULES_SOURCE,
    NODE_KINDS,
    OWN_OPENWHISK,
    REPO,
    SENTINEL,
    SOURCES,
    ZIPPED,
    ProxyClient,
    check_modules,
    family,
    manifest_images,
    module_params,
    pinned_node,
    zip_base64,
)

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]  # a cold image build takes minutes

BUILD = REPO / "deploy" / "runtimes" / "build.sh"
DEBIAN_NODE = {"nodejs:18"}  # images that keep Debian bookworm's nodejs package (18.x)
MODULES = "/homerun/node_modules"
HARDENING = [
    "--read-only",
    "--tmpfs", "/tmp:rw,size=64m",
    "--cap-drop", "ALL",
    "--security-opt", "no-new-privileges",
    "--pids-limit", "64",
    "--network", "none",
    "--memory", "256m",
    "--memory-swap", "256m",
    "--user", "1000:1000",
]  # fmt: skip


def docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="session")
def images() -> dict[str, str]:
    """Builds (or confirms, it is idempotent) every runtime image; kind -> image."""
    if shutil.which("docker") is None:
        pytest.fail("the docker CLI is not installed: run `source deploy/lib.sh; ensure_docker`")
    info = docker("info", "--format", "{{.ServerVersion}}")
    if info.returncode != 0:
        pytest.fail(
            "the Docker engine is not reachable, so the runtime images cannot be tested. Start it "
            f"with `bash -c 'source deploy/lib.sh; ensure_docker'`.\n{info.stderr.strip()}"
        )
    build = subprocess.run(
        [str(BUILD)], capture_output=True, text=True, timeout=1800, check=False, cwd=REPO
    )
    if build.returncode != 0:
        pytest.fail(f"{BUILD} failed ({build.returncode}):\n{build.stdout}\n{build.stderr}")
    return manifest_images()


class Container(ProxyClient):
    def __init__(self, container_id: str, directory: Path) -> None:
        super().__init__(directory / "action.sock")
        self.id = container_id
        self.directory = directory

    def running(self) -> bool:
        state = docker("inspect", "--format", "{{.State.Running}}", self.id)
        return state.stdout.strip() == "true"

    def logs(self) -> tuple[list[str], list[str]]:
        result = docker("logs", self.id)
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines(), result.stderr.splitlines()


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def runtime(kind: str) -> str:
    """The kind's family, which SOURCES and ZIPPED are keyed by."""
    return family(kind)


@pytest.fixture
def start(images: dict[str, str], kind: str) -> Iterator[Callable[[], Container]]:
    """Starts hardened containers of `kind`'s image; always removes them."""
    started: list[Container] = []

    def run_container() -> Container:
        directory = Path(tempfile.mkdtemp(prefix="hr-", dir="/tmp"))
        directory.chmod(0o777)  # the proxy runs as uid 1000 and creates its socket here
        result = docker(
            "run", "-d", "--rm", "--pull", "never", *HARDENING,
            "-v", f"{directory}:/run/homerun", images[kind],
        )  # fmt: skip
        if result.returncode != 0:
            shutil.rmtree(directory, ignore_errors=True)
            pytest.fail(f"docker run failed: {result.stderr}")
        container = Container(result.stdout.strip(), directory)
        started.append(container)
        container.wait_healthy(container.running, 30, f"{kind} container {container.id}")
        return container

    yield run_container
    for container in started:
        container.close()
        docker("rm", "-f", container.id)
        shutil.rmtree(container.directory, ignore_errors=True)


def test_images_are_local_and_configured(images: dict[str, str]) -> None:
    assert set(images) == set(KINDS) and len(KINDS) >= 6
    for kind, image in images.items():
        result = docker("image", "inspect", "--format", "{{json .Config}}", image)
        assert result.returncode == 0, f"{image} is missing: {result.stderr}"
        config = json.loads(result.stdout)
        assert config["User"] == "1000:1000"
        assert config["WorkingDir"] == "/tmp"
        assert "HOMERUN_SOCKET=/run/homerun/action.sock" in config["Env"]
        assert config["Labels"]["org.homerun.kind"] == kind
        node_path = [e for e in config["Env"] if e.startswith("NODE_PATH=")]
        assert node_path == ([f"NODE_PATH={MODULES}"] if family(kind) == "nodejs" else [])


def test_rebuilding_is_a_no_op(images: dict[str, str]) -> None:
    def ids() -> dict[str, str]:
        return {
            i: docker("image", "inspect", "--format", "{{.Id}}", i).stdout for i in images.values()
        }

    before = ids()
    started = time.monotonic()
    build = subprocess.run([str(BUILD)], capture_output=True, text=True, timeout=120, check=False)
    assert build.returncode == 0, build.stderr
    assert time.monotonic() - started < 30
    assert "up to date" in build.stderr
    assert ids() == before


def test_unknown_kind_is_refused(images: dict[str, str]) -> None:
    build = subprocess.run(
        [str(BUILD), "cobol:85"], capture_output=True, text=True, timeout=60, check=False
    )
    assert build.returncode != 0
    assert "unknown kind 'cobol:85'" in build.stderr


def test_plain_action(start: Callable[[], Container], runtime: str) -> None:
    container = start()
    assert container.init(SOURCES["echo"][runtime]).status_code == 200
    response = container.run({"name": "World"})
    assert (response.status_code, response.json()) == (200, {"params": {"name": "World"}})


def test_zip_action(start: Callable[[], Container], runtime: str) -> None:
    container = start()
    response = container.init(zip_base64(ZIPPED[runtime]), binary=True)
    assert response.status_code == 200, response.text
    assert container.run({"n": 5}).json() == {"doubled": 10}


def test_ow_environment(start: Callable[[], Container], runtime: str) -> None:
    container = start()
    assert container.init(SOURCES["env"][runtime], env={"MY_SETTING": "on"}).status_code == 200
    context = {
        "namespace": "guest",
        "action_name": "/guest/hello",
        "activation_id": "a1b2",
        "deadline": "1700000060000",
        "api_key": "uuid:key",
    }
    env = container.run(**context).json()
    assert env == {"MY_SETTING": "on"} | {f"__OW_{k.upper()}": v for k, v in context.items()}


def test_actions_run_unprivileged_with_a_read_only_root(
    start: Callable[[], Container], runtime: str
) -> None:
    container = start()
    assert container.init(SOURCES["identity"][runtime]).status_code == 200
    assert container.run().json() == {"uid": 1000, "gid": 1000, "tmp": True, "root": False}


def test_docker_logs_hold_the_output_and_sentinels(
    start: Callable[[], Container], runtime: str
) -> None:
    container = start()
    assert container.init(SOURCES["logs"][runtime]).status_code == 200
    for n in (1, 2):
        assert container.run({"n": n}).json() == {"n": n}
    expected_out = ["out 1", SENTINEL, "out 2", SENTINEL]
    expected_err = ["err 1", SENTINEL, "err 2", SENTINEL]
    deadline = time.monotonic() + 10  # the engine's log driver writes asynchronously
    while True:
        stdout, stderr = container.logs()
        if (stdout, stderr) == (expected_out, expected_err) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert (stdout, stderr) == (expected_out, expected_err)


def test_no_network_inside(start: Callable[[], Container], runtime: str) -> None:
    container = start()
    source = {
        "nodejs": "const os = require('os');\n"
        "function main() { return {interfaces: Object.keys(os.networkInterfaces()).sort()}; }\n",
        "python": "import socket\n\n"
        "def main(params):\n"
        "    return {'interfaces': sorted(name for _, name in socket.if_nameindex())}\n",
    }[runtime]
    assert container.init(source).status_code == 200
    assert container.run().json() == {"interfaces": ["lo"]}


def test_memory_limit_applies(start: Callable[[], Container], runtime: str) -> None:
    # Not an OOM test (slow and flaky): the cgroup the container runs in carries the limit.
    container = start()
    source = {
        "nodejs": "const fs = require('fs');\n"
        "function main() {\n"
        "  for (const f of ['/sys/fs/cgroup/memory.max',\n"
        "                   '/sys/fs/cgroup/memory/memory.limit_in_bytes']) {\n"
        "    try { return {limit: fs.readFileSync(f, 'utf8').trim()}; } catch (e) {}\n"
        "  }\n"
        "  return {limit: null};\n"
        "}\n",
        "python": "def main(params):\n"
        "    for f in ('/sys/fs/cgroup/memory.max',\n"
        "              '/sys/fs/cgroup/memory/memory.limit_in_bytes'):\n"
        "        try:\n"
        "            return {'limit': open(f).read().strip()}\n"
        "        except OSError:\n"
        "            pass\n"
        "    return {'limit': None}\n",
    }[runtime]
    assert container.init(source).status_code == 200
    assert container.run().json() == {"limit": str(256 * 1024 * 1024)}


def build_unlisted_kind(tmp_path: Path, kind: str) -> tuple[str, subprocess.CompletedProcess[str]]:
    """build.sh run for a kind that only a temporary manifest lists; its image, and the run."""
    manifest = tmp_path / "runtimes.json"
    image = f"homerun-test/action-{kind.replace(':', '-')}:latest"
    runtime = {"kind": kind, "image": image, "default": True, "stemCells": []}
    manifest.write_text(json.dumps({"runtimes": {family(kind): [runtime]}}))
    build = subprocess.run(
        [str(BUILD), kind],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "HOMERUN_RUNTIMES_MANIFEST": str(manifest)},
    )
    return image, build


def test_a_kind_debian_does_not_package_fails_clearly(
    images: dict[str, str], tmp_path: Path
) -> None:
    image, build = build_unlisted_kind(tmp_path, "python:3.12")
    assert build.returncode != 0
    assert "python:3.12: Debian bookworm provides python 3.11." in build.stderr
    assert docker("image", "inspect", image).returncode != 0


def test_a_nodejs_kind_without_a_recipe_fails_clearly(
    images: dict[str, str], tmp_path: Path
) -> None:
    image, build = build_unlisted_kind(tmp_path, "nodejs:16")
    assert build.returncode != 0
    assert "nodejs:16: no recipe: " in build.stderr
    assert "deploy/runtimes/nodejs/16/package.json" in build.stderr
    assert docker("image", "inspect", image).returncode != 0


# ---- nodejs: the Node version and the modules Adobe preinstalls ------------------------------


@pytest.mark.parametrize("kind", NODE_KINDS)
def test_each_nodejs_image_runs_its_node(start: Callable[[], Container], kind: str) -> None:
    container = start()
    source = "function main() { return {node: process.versions.node}; }\n"
    assert container.init(source).status_code == 200
    node = container.run().json()["node"]
    if kind in DEBIAN_NODE:
        assert node.startswith(kind.split(":")[1] + "."), node
    else:
        assert node == pinned_node(kind)


@pytest.mark.parametrize("kind", NODE_KINDS)
def test_preinstalled_modules_resolve_from_a_plain_action(
    start: Callable[[], Container], kind: str
) -> None:
    container = start()
    assert container.init(MODULES_SOURCE).status_code == 200
    response = container.run(module_params(kind))
    assert response.status_code == 200, response.text
    check_modules(kind, response.json(), MODULES)


@pytest.mark.parametrize("kind", NODE_KINDS)
def test_preinstalled_modules_resolve_from_a_zip_action(
    start: Callable[[], Container], kind: str
) -> None:
    container = start()
    response = container.init(zip_base64({"index.js": MODULES_SOURCE}), binary=True)
    assert response.status_code == 200, response.text
    response = container.run(module_params(kind))
    assert response.status_code == 200, response.text
    check_modules(kind, response.json(), MODULES)


@pytest.mark.parametrize("kind", NODE_KINDS)
def test_a_zips_own_node_modules_win(start: Callable[[], Container], kind: str) -> None:
    container = start()
    response = container.init(zip_base64(OWN_OPENWHISK), binary=True)
    assert response.status_code == 200, response.text
    assert container.run().json() == {
        "marker": "shipped with the zip",
        "express": "function",
        "expressAt": f"{MODULES}/express/index.js",
    }
