"""The sandbox behaviour suite: the `Sandbox`/`Container` contract (invoker/sandbox.py) run
against each implementation (the process sandbox, and the docker sandbox on a real engine) and,
where the behaviour depends on the runtime, against each kind. The proxies' own protocol is
tested in tests/invoker/runtimes; this suite is about what a sandbox adds: start-up, the
container's environment, its output reaching the log buffer, timeouts, memory, liveness and
removal."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import docker
import pytest
import pytest_asyncio

from controller.runtimes import load_manifest
from invoker.apirelay import API_HOST_IN_CONTAINER
from invoker.docker_sandbox import LABEL, DockerSandbox
from invoker.logs import LogCollection
from invoker.protocol import platform_env
from invoker.sandbox import (
    Container,
    ContainerSpec,
    Exchange,
    ImageMissing,
    ProvisionError,
    Sandbox,
)
from tests.conftest import SANDBOXES, make_sandbox
from tests.invoker.test_logs import parsed
from tests.invoker.test_pool import until

# One event loop for the module: containers and their log readers belong to the loop that
# started them, and the module shares them between tests.
pytestmark = pytest.mark.asyncio(loop_scope="module")

NODE = "nodejs:18"
PYTHON = "python:3.11"
MEMORY_MB = 128
TIMEOUT_S = 30.0
LOG_LIMIT = 1 << 20
LOG_WAIT_S = 5.0
SUITE_API_HOST = "http://api.sandbox-suite.test:3233"
ENV = {**platform_env(SUITE_API_HOST), "SUITE_MARK": "m-42"}

# One action per kind, steered by its parameters: print `out` to stdout and `err` to stderr,
# exit with code `exit`, allocate memory forever if `hoard`, sleep `sleep_ms`, then answer with
# the parameters and the value of the environment variable named `env`.
ACTION = {
    NODE: """
function main(p) {
  if (p.out !== undefined) console.log(p.out);
  if (p.err !== undefined) console.error(p.err);
  if (p.exit !== undefined) process.exit(p.exit);
  const hoard = [];
  while (p.hoard) hoard.push(Buffer.alloc(16 * 1024 * 1024, 1));
  const reply = {params: p, env: p.env === undefined ? null : (process.env[p.env] ?? null)};
  return new Promise((resolve) => setTimeout(() => resolve(reply), p.sleep_ms || 0));
}
""",
    PYTHON: """
import os
import sys
import time


def main(p):
    if 'out' in p:
        print(p['out'])
    if 'err' in p:
        print(p['err'], file=sys.stderr)
    if 'exit' in p:
        sys.stdout.flush()
        os._exit(p['exit'])
    hoard = []
    while p.get('hoard'):
        hoard.append(b'\\x01' * (16 << 20))
    time.sleep(p.get('sleep_ms', 0) / 1000)
    return {'params': p, 'env': os.environ.get(p['env']) if 'env' in p else None}
""",
}
# Settings that make each runtime's interpreter exit before its proxy listens.
BROKEN_START_ENV = {NODE: {"NODE_OPTIONS": "--no-such-flag"}, PYTHON: {"PYTHONHOME": "/absent"}}


def spec_of(kind: str, env: dict[str, str]) -> ContainerSpec:
    runtime = load_manifest().get(kind)
    assert runtime is not None, kind
    return ContainerSpec(kind, runtime.image, MEMORY_MB, name="suite", env=env)


def init_payload(kind: str) -> dict[str, Any]:
    return {"value": {"name": "suite", "main": "main", "code": ACTION[kind], "binary": False}}


def run_payload(**params: Any) -> dict[str, Any]:
    return {"value": params, "activation_id": secrets.token_hex(16)}


def answer(exchange: Exchange) -> Any:
    assert exchange.status is not None, exchange
    return json.loads(exchange.body)


# How the host sees a sandbox's containers, without going through the sandbox.


class Host(Protocol):
    async def kill(self, container: Container) -> None:
        """Kill the container from outside, as an operator or the kernel would."""

    async def exists(self, container: Container) -> bool:
        """Whether anything of the container still runs or is registered on the host."""

    async def footprint(self) -> set[str]:
        """Everything the sandbox has on the host now (containers, working directories)."""


class DockerHost:
    def __init__(self, invoker_id: str) -> None:
        self.invoker_id = invoker_id
        self.client = docker.from_env(timeout=30)

    async def kill(self, container: Container) -> None:
        await asyncio.to_thread(lambda: self.client.containers.get(container.id).kill())

    async def exists(self, container: Container) -> bool:
        return container.id in await self.footprint()

    async def footprint(self) -> set[str]:
        def listed() -> set[str]:
            labelled = self.client.containers.list(
                all=True, filters={"label": f"{LABEL}={self.invoker_id}"}
            )
            return {str(c.id) for c in labelled}

        return await asyncio.to_thread(listed)


class ProcessHost:
    def __init__(self, work_root: Path) -> None:
        self.work_root = work_root

    @staticmethod
    def _group(container: Container) -> int:
        # The proxy leads a session (and so a process group) of its own, named in the id.
        assert container.id.startswith("pid-"), container.id
        return int(container.id.removeprefix("pid-"))

    async def kill(self, container: Container) -> None:
        os.killpg(self._group(container), signal.SIGKILL)

    async def exists(self, container: Container) -> bool:
        try:
            os.killpg(self._group(container), 0)
        except ProcessLookupError:
            return False
        return True

    async def footprint(self) -> set[str]:
        if not self.work_root.exists():
            return set()
        return {entry.name for entry in self.work_root.iterdir()}


@dataclass
class Backend:
    sandbox: Sandbox
    host: Host


@dataclass
class Warm:
    """A started, initialised container shared by a module's tests. Every run goes through
    `run`, which also collects that run's logs, so that each test finds the buffer empty."""

    container: Container
    init: Exchange

    async def run(self, **params: Any) -> tuple[Exchange, LogCollection]:
        exchange = await self.container.run(run_payload(**params), TIMEOUT_S)
        return exchange, await self.container.collect_logs(LOG_LIMIT, LOG_WAIT_S)


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=SANDBOXES)
async def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Backend]:
    invoker_id = f"suite-{secrets.token_hex(4)}"
    sandbox = make_sandbox(request.param, tmp_path_factory.mktemp("sandbox"), invoker_id)
    if isinstance(sandbox, DockerSandbox):
        host: Host = DockerHost(invoker_id)
    else:
        host = ProcessHost(sandbox.work_root)
    yield Backend(sandbox, host)
    await sandbox.close()
    assert await host.footprint() == set(), "a container outlived the suite"
    if isinstance(host, DockerHost):
        host.client.close()


@pytest.fixture(scope="module", params=[NODE, PYTHON])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def warm(backend: Backend, kind: str) -> AsyncIterator[Warm]:
    container = await backend.sandbox.start(spec_of(kind, ENV))
    try:
        yield Warm(container, await container.init(init_payload(kind), TIMEOUT_S))
    finally:
        await container.destroy()


Start = Callable[..., Awaitable[Container]]


@pytest_asyncio.fixture(loop_scope="module")
async def start(backend: Backend) -> AsyncIterator[Start]:
    """`await start(kind)`: a new container of `kind`, initialised with ACTION unless
    `init=False`; destroyed after the test."""
    started: list[Container] = []

    async def make(kind: str, *, init: bool = True) -> Container:
        container = await backend.sandbox.start(spec_of(kind, {}))
        started.append(container)
        if init:
            exchange = await container.init(init_payload(kind), TIMEOUT_S)
            assert exchange.status == 200, exchange
        return container

    yield make
    for container in started:
        await container.destroy()


# Start-up.


async def test_start_returns_once_the_proxy_answers(warm: Warm, start: Start, kind: str) -> None:
    container = await start(kind, init=False)
    assert container.spec == spec_of(kind, {})
    assert container.id and container.id != warm.container.id  # the same name hint, twice
    assert container.alive()
    # Asked at once, without polling: the proxy answers (and refuses, not yet initialised).
    early = await container.run(run_payload(), TIMEOUT_S)
    assert (early.status, answer(early)) == (
        403, {"error": "Cannot run the action before it is initialized."},
    )  # fmt: skip
    await container.collect_logs(LOG_LIMIT, LOG_WAIT_S)  # the refused run's sentinels
    assert (await container.init(init_payload(kind), TIMEOUT_S)).status == 200
    assert answer(await container.run(run_payload(n=1), TIMEOUT_S)) == {
        "params": {"n": 1}, "env": None,
    }  # fmt: skip


async def test_a_runtime_that_exits_during_start_up_is_a_provision_error(
    backend: Backend, kind: str
) -> None:
    before = await backend.host.footprint()
    with pytest.raises(ProvisionError, match="exited"):
        await backend.sandbox.start(spec_of(kind, BROKEN_START_ENV[kind]))
    assert await backend.host.footprint() == before


async def test_what_cannot_be_started_raises_and_leaves_nothing(backend: Backend) -> None:
    before = await backend.host.footprint()
    if backend.sandbox.name == "docker":
        # Nothing is ever pulled.
        with pytest.raises(ImageMissing):
            await backend.sandbox.start(ContainerSpec(NODE, "homerun-test/absent:1", 128, "x"))
    else:
        with pytest.raises(ProvisionError, match="cobol:85"):
            await backend.sandbox.start(ContainerSpec("cobol:85", "cobol-image", 128, "x"))
    assert await backend.host.footprint() == before


# Init and run.


async def test_init_then_run_answers_with_the_result(warm: Warm) -> None:
    assert (warm.init.status, answer(warm.init)) == (200, {"ok": True})
    assert (warm.init.timed_out, warm.init.delivered) == (False, True)
    params = {"name": "World", "nested": {"list": [1, 2.5, None, "x"]}, "flag": True}
    exchange, logs = await warm.run(**params)
    assert exchange.status == 200
    assert answer(exchange) == {"params": params, "env": None}
    assert (exchange.timed_out, exchange.delivered) == (False, True)
    assert exchange.elapsed_ms >= 0
    assert (logs.complete, logs.lines) == (True, [])  # nothing printed, yet framed


def api_host_inside(backend: Backend, api_host: str) -> str:
    """The `__OW_API_HOST` an action sees: in a docker container, the door to the API relay
    in its own loopback, whatever the API's address."""
    return API_HOST_IN_CONTAINER if isinstance(backend.sandbox, DockerSandbox) else api_host


async def test_the_spec_env_reaches_the_action(warm: Warm, backend: Backend) -> None:
    """The platform's variables name the API (and its State endpoint) as the action reaches
    it."""
    expected = {**ENV, **platform_env(api_host_inside(backend, SUITE_API_HOST))}
    assert expected["AIO_STATE_ENDPOINT"].endswith("/state")
    for name, value in expected.items():
        exchange, _ = await warm.run(env=name)
        assert answer(exchange)["env"] == value, name
    exchange, _ = await warm.run(env="SUITE_NOT_SET")
    assert answer(exchange)["env"] is None


async def test_each_run_brings_its_api_host(start: Start, backend: Backend, kind: str) -> None:
    """A container started without one (a stem cell) learns it from its first activation."""
    container = await start(kind)
    payload = run_payload(env="__OW_API_HOST") | {"api_host": "http://api.run.test:3233"}
    exchange = await container.run(payload, TIMEOUT_S)
    await container.collect_logs(LOG_LIMIT, LOG_WAIT_S)
    assert answer(exchange)["env"] == api_host_inside(backend, "http://api.run.test:3233")


async def test_collect_logs_returns_the_lines_of_each_run(warm: Warm) -> None:
    for n in (1, 2):
        exchange, logs = await warm.run(out=f"out {n}", err=f"err {n}")
        assert exchange.status == 200
        assert logs.complete and not logs.truncated
        assert sorted(parsed(logs.lines)) == [("stderr", f"err {n}"), ("stdout", f"out {n}")]
    exchange, logs = await warm.run(out="multi\nline", err="")
    assert logs.complete
    assert sorted(parsed(logs.lines)) == [("stderr", ""), ("stdout", "line"), ("stdout", "multi")]


# Failures.


async def test_a_run_past_its_timeout_times_out(backend: Backend, start: Start, kind: str) -> None:
    container = await start(kind)
    exchange = await container.run(run_payload(sleep_ms=20_000), 0.5)
    assert (exchange.status, exchange.body, exchange.timed_out) == (None, b"", True)
    assert exchange.delivered
    assert exchange.elapsed_ms >= 450
    # A timed-out container is destroyed while its action still runs.
    await container.destroy()
    assert not container.alive()
    assert not await backend.host.exists(container)


async def test_an_action_that_exits_drops_the_exchange_and_keeps_its_output(
    start: Start, kind: str
) -> None:
    container = await start(kind)
    exchange = await container.run(run_payload(out="last words", exit=3), TIMEOUT_S)
    assert (exchange.status, exchange.timed_out) == (None, False)
    assert exchange.delivered, "the request reached the action"
    logs = await container.collect_logs(LOG_LIMIT, 2.0)
    assert not logs.complete  # no sentinels after a crash
    assert ("stdout", "last words") in parsed(logs.lines)
    await until(lambda: not container.alive(), 2.0)
    assert not await container.was_oom_killed()


async def test_memory_over_the_limit_is_detected(backend: Backend, start: Start, kind: str) -> None:
    container = await start(kind)
    exchange = await container.run(run_payload(hoard=True), TIMEOUT_S)
    assert not exchange.timed_out
    assert await container.was_oom_killed()
    if backend.sandbox.name == "docker":
        # The memory cgroup: the engine kills the container mid-request.
        assert (exchange.status, exchange.delivered) == (None, True)
        await until(lambda: not container.alive(), 2.0)
    else:
        # No cgroup: RLIMIT_DATA makes the allocation fail inside the action.
        assert exchange.status == 502
        error = answer(exchange)["error"]
        assert "MemoryError" in error or "allocation failed" in error, error


# Liveness and removal.


async def test_alive_goes_false_after_an_outside_kill_and_runs_are_undelivered(
    backend: Backend, start: Start, kind: str
) -> None:
    # Per kind: how fast a killed runtime lets go of its socket depends on its threads.
    container = await start(kind)
    assert answer(await container.run(run_payload(n=1), TIMEOUT_S))["params"] == {"n": 1}
    assert container.alive()
    await backend.host.kill(container)
    await until(lambda: not container.alive(), 2.0)
    exchange = await container.run(run_payload(n=2), TIMEOUT_S)
    assert (exchange.status, exchange.timed_out, exchange.delivered) == (None, False, False), (
        "alive() said the container was dead, so the request cannot have reached the action"
    )
    assert not await container.was_oom_killed()
    await container.destroy()
    await container.destroy()
    assert not await backend.host.exists(container)


async def test_destroy_removes_the_container_and_is_safe_twice(
    backend: Backend, start: Start
) -> None:
    container = await start(NODE)
    assert await backend.host.exists(container)
    assert container.alive()
    await container.destroy()
    assert not container.alive()
    assert not await backend.host.exists(container)
    await container.destroy()
    assert not await backend.host.exists(container)


# Pausing.

COUNTING = """
let ticks = 0;
let timer = null;
function main() {
  if (timer === null) timer = setInterval(() => { ticks += 1; }, 10);
  return {ticks};
}
"""


async def test_a_paused_container_runs_nothing_until_it_is_resumed(start: Start) -> None:
    container = await start(NODE, init=False)
    code = {"name": "count", "main": "main", "code": COUNTING, "binary": False}
    assert (await container.init({"value": code}, TIMEOUT_S)).status == 200
    assert answer(await container.run(run_payload(), TIMEOUT_S)) == {"ticks": 0}
    await asyncio.sleep(0.3)  # about 30 ticks
    await container.pause()
    assert container.alive()
    await asyncio.sleep(1.0)  # about 100 more, were it running
    await container.resume()
    ticks = answer(await container.run(run_payload(), TIMEOUT_S))["ticks"]
    assert 5 <= ticks <= 70, ticks  # initialised once: its timer went on where it stopped


@pytest.mark.parametrize("how", ["destroyed", "killed"])
async def test_a_paused_container_can_be_destroyed_or_seen_killed(
    backend: Backend, start: Start, how: str
) -> None:
    container = await start(NODE)
    await container.pause()
    if how == "killed":
        await backend.host.kill(container)
        await until(lambda: not container.alive(), 2.0)
    await container.destroy()
    assert not container.alive()
    assert not await backend.host.exists(container)


# What an action may not do to the host.

SWAP_SOCKET = """
const fs = require('fs');
function main(p) {
  const socket = process.env.HOMERUN_SOCKET;
  let swapped = true;
  try {
    fs.rmSync(socket, {force: true});
    fs.symlinkSync(p.trap, socket);
  } catch (err) {
    swapped = false; // the docker sandbox sealed the socket's directory
  }
  return new Promise((resolve) => setTimeout(() => resolve({swapped}), 500));
}
"""


async def test_a_socket_the_action_swaps_for_a_symlink_is_never_followed(
    backend: Backend, start: Start, tmp_path: Path
) -> None:
    # The action replaces its proxy's socket with a symlink to a socket on the host (the
    # host's Docker engine, say); the invoker's next connections still reach the proxy. The
    # docker sandbox refuses the swap itself; the process sandbox lets it happen.
    reached: list[bytes] = []

    async def trap(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reached.append(await reader.read(200))
        writer.close()

    trap_path = tmp_path / "trap.sock"
    server = await asyncio.start_unix_server(trap, path=str(trap_path))
    trap_path.chmod(0o777)
    try:
        container = await start(NODE, init=False)
        code = {"name": "swap", "main": "main", "code": SWAP_SOCKET, "binary": False}
        assert (await container.init({"value": code}, TIMEOUT_S)).status == 200
        swap = run_payload(trap=str(trap_path))

        async def while_it_runs() -> Exchange:
            # The first run holds the one connection: this one needs a new connection.
            await asyncio.sleep(0.2)
            return await container.run(run_payload(trap=str(trap_path)), TIMEOUT_S)

        first, second = await asyncio.gather(container.run(swap, TIMEOUT_S), while_it_runs())
        assert answer(first) == {"swapped": backend.sandbox.name == "process"}
        assert second.status is not None, "the second request reached the proxy"
        assert reached == [], "a request went to the socket the action planted"
    finally:
        server.close()
        await server.wait_closed()


# From inside an action: try to write 20 MB to every mount that is not in memory (the socket
# directory, bind-mounted from the host, and the engine's /etc files among them), to plant a
# file, a symlink and a hard link beside the socket and to rename or remove the socket; and
# fill /tmp until it refuses.
PLANT = """
const fs = require('fs');
const path = require('path');
const IN_MEMORY = ['tmpfs', 'proc', 'sysfs', 'devpts', 'mqueue', 'cgroup', 'cgroup2'];
const MB = Buffer.alloc(1 << 20, 1);
const tried = [];
function attempt(done, what, act) {
  tried.push(what);
  try { act(); done.push(what); } catch (err) { /* refused, as it should be */ }
}
function fill(file, mb) {
  const fd = fs.openSync(file, 'a');
  let written = 0;
  try { for (; written < mb; written += 1) fs.writeSync(fd, MB); } finally { fs.closeSync(fd); }
  return written;
}
function main() {
  const done = [];
  const mounts = fs.readFileSync('/proc/self/mounts', 'utf8').trim().split('\\n');
  for (const [, target, type] of mounts.map((line) => line.split(' '))) {
    if (IN_MEMORY.includes(type)) continue;
    const file = fs.statSync(target).isDirectory() ? path.join(target, 'planted') : target;
    attempt(done, `write ${file}`, () => fill(file, 20));
  }
  const socket = process.env.HOMERUN_SOCKET;
  const dir = path.dirname(socket);
  attempt(done, 'symlink', () => fs.symlinkSync('/etc/passwd', path.join(dir, 'link')));
  attempt(done, 'hard link', () => fs.linkSync(socket, path.join(dir, 'again.sock')));
  attempt(done, 'rename', () => fs.renameSync(socket, path.join(dir, 'moved.sock')));
  attempt(done, 'unlink', () => fs.unlinkSync(socket));
  attempt(done, 'chmod', () => fs.chmodSync(dir, 0o777));
  let tmp = 0;
  try { fill('/tmp/fill', 1024); } catch (err) { tmp = fs.statSync('/tmp/fill').size >> 20; }
  fs.rmSync('/tmp/fill', {force: true});
  return {done, tried, tmp};
}
"""


# The docker sandbox only: the process sandbox does not bound what an action writes (README).
@pytest.mark.docker
@pytest.mark.parametrize("backend", ["docker"], indirect=True)
async def test_an_action_writes_nothing_to_the_host_outside_its_tmpfs(
    backend: Backend, start: Start
) -> None:
    assert isinstance(backend.sandbox, DockerSandbox)
    before = set(backend.sandbox.socket_root.iterdir())
    container = await start(NODE, init=False)
    (socket_dir,) = set(backend.sandbox.socket_root.iterdir()) - before
    code = {"name": "plant", "main": "main", "code": PLANT, "binary": False}
    assert (await container.init({"value": code}, TIMEOUT_S)).status == 200
    probe = answer(await container.run(run_payload(), TIMEOUT_S))
    assert {"write /planted", "write /run/homerun/planted", "unlink"} <= set(probe["tried"])
    assert probe["done"] == [], "the action wrote to the host"
    assert probe["tmp"] == backend.sandbox.tmpfs_mb, "/tmp is a tmpfs of its size"
    assert [entry.name for entry in socket_dir.iterdir()] == ["action.sock"]
    assert answer(await container.run(run_payload(), TIMEOUT_S))["done"] == []
