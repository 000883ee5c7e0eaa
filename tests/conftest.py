"""Shared fixtures. Every test that uses `database_url` runs once per backend: SQLite and
PostgreSQL (a private database created for the session and dropped after it)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text

from controller.api.app import create_app
from controller.db.models import Base
from controller.db.sealed import Keyring
from controller.domain import TokenScope
from controller.services import credentials
from controller.settings import Settings
from controller.setup import in_transaction, upgrade_database
from homerun import standalone

PG_ADMIN_URL = os.environ.get(
    "HOMERUN_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BACKENDS = os.environ.get("HOMERUN_TEST_BACKENDS", "sqlite,postgresql").split(",")

# One sealing key for the session's databases, whose tests each have their own data directory
# (where a controller would otherwise make a key of its own); controller.db.sealed's key file is
# tested in tests/controller/db/test_sealing.py.
os.environ["HOMERUN_SECRET_KEYS"] = Keyring.new_key()


async def _pg_admin(statement: str) -> None:
    connection = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[Callable[[], str]]:
    """Creates private PostgreSQL databases on demand; drops them all at the end."""
    created: list[str] = []

    def make() -> str:
        name = f"homerun_test_{os.getpid()}_{secrets.token_hex(4)}"
        try:
            asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
        except (OSError, asyncpg.PostgresError) as exc:
            pytest.fail(
                f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({exc}). Start it, or run "
                "with HOMERUN_TEST_BACKENDS=sqlite to test SQLite only."
            )
        created.append(name)
        base = PG_ADMIN_URL.rsplit("/", 1)[0]
        return f"{base}/{name}"

    yield make
    for name in created:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def fresh_database_url(
    tmp_path_factory: pytest.TempPathFactory, pg_database: Callable[[], str]
) -> Callable[[str], str]:
    """A factory of empty databases of a backend, for migration tests."""

    def make(backend: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path_factory.mktemp('db') / 'homerun.db'}"
        return pg_database()

    return make


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest,
    fresh_database_url: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> str:
    """A migrated database (schema at head, system catalog synced) of each backend."""
    url = fresh_database_url(request.param)
    upgrade_database(Settings(data_dir=tmp_path_factory.mktemp("data"), database_url=url))
    return url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, database_url=database_url)


async def _reset(settings: Settings) -> None:
    """Empty every table, then restore the system catalog."""
    from controller.runtimes import load_manifest
    from controller.services import catalog
    from controller.services.actions import WriteContext

    async def wipe(session: Any) -> None:
        for table in reversed(Base.metadata.sorted_tables):
            await session.execute(text(f"DELETE FROM {table.name}"))
        await catalog.sync(session, WriteContext(load_manifest(), settings.limits))

    await in_transaction(settings, wipe)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for a fresh app over an emptied database."""
    await _reset(settings)
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


Headers = dict[str, str]


@pytest.fixture
def issue(settings: Settings) -> Callable[..., Awaitable[Headers]]:
    """`await issue(org="acme")` or `await issue(admin=True)`: seed-API headers for a new
    token and API key."""

    async def make(*, org: str | None = None, admin: bool = False) -> Headers:
        scope = TokenScope.ADMIN if admin else TokenScope.ORG

        async def work(session: Any) -> Headers:
            _, token = await credentials.create_token(session, scope, None if admin else org)
            _, key = await credentials.create_api_key(session)
            return {"Authorization": f"Bearer {token}", "X-Api-Key": key}

        return await in_transaction(settings, work)

    return make


@pytest.fixture
async def admin_headers(
    client: httpx.AsyncClient, issue: Callable[..., Awaitable[Headers]]
) -> Headers:
    return await issue(admin=True)


@pytest.fixture
def create_namespace(
    client: httpx.AsyncClient, admin_headers: Headers
) -> Callable[[str, str], Awaitable[dict[str, Any]]]:
    """`await create_namespace(org, int)`: the NamespaceDTO of a new namespace."""

    async def make(org: str, int_id: str) -> dict[str, Any]:
        response = await client.post(
            f"/runtime/admin/namespaces/{org}/{int_id}", headers=admin_headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    return make


# The execution engine: Redis, invokers and sandboxes.

REDIS_URL = os.environ.get("HOMERUN_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
SANDBOXES = [
    pytest.param("process", id="process"),
    pytest.param("docker", id="docker", marks=pytest.mark.docker),
]


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A private key prefix on the test Redis database, deleted afterwards."""
    from redis.asyncio import Redis

    prefix = f"t{secrets.token_hex(6)}"
    redis = Redis.from_url(REDIS_URL)
    try:
        await redis.ping()
    except Exception as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL}: {exc}")
    yield prefix
    keys = [k async for k in redis.scan_iter(match=f"{prefix}:*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


def make_sandbox(kind: str, work: Path, invoker_id: str, **docker_options: Any) -> Any:
    """A sandbox of `kind` for tests; docker fails (never skips) without an engine or images.
    `docker_options` go to the docker sandbox."""
    from invoker.docker_sandbox import DockerSandbox
    from invoker.process_sandbox import ProcessSandbox

    if kind == "process":
        # Not under pytest's tmp_path: an unprivileged child must be able to reach it.
        root = Path(tempfile.mkdtemp(prefix="hrp", dir="/tmp"))
        root.chmod(0o755)
        return ProcessSandbox(root / "proc")
    if not DockerSandbox.available():
        pytest.fail("the Docker engine is not reachable: run deploy/test.sh (it starts dockerd)")
    socket_root = Path(tempfile.mkdtemp(prefix="hrs", dir="/tmp"))
    sandbox = DockerSandbox(socket_root, invoker_id, **docker_options)
    from controller.runtimes import load_manifest

    for runtimes in load_manifest().families.values():
        for runtime in runtimes:
            if not sandbox.image_exists(runtime.image):
                pytest.fail(f"image {runtime.image} is missing: run deploy/runtimes/build.sh")
    return sandbox


class Engine:
    """A controller app with the execution engine, and one in-process invoker."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        headers: Headers,
        worker: Any,
        base: str,
        settings: Settings,
    ) -> None:
        self.settings = settings
        self.client = client
        self.headers = headers
        self.worker = worker
        self.base = base  # /runtime/namespaces/{org}/{int}

    async def create(self, name: str, code: str, kind: str = "nodejs:18", **extra: Any) -> Any:
        body = {"name": name, "code": code, "exec": {"kind": kind, **extra.pop("exec", {})}}
        body.update(extra)
        response = await self.client.post(f"{self.base}/actions", json=body, headers=self.headers)
        assert response.status_code == 200, response.text
        return response.json()

    async def activation(self, activation_id: str) -> Any:
        return await activation_of(self.settings, activation_id)

    async def invoke(self, name: str, params: Any = None, **query: Any) -> httpx.Response:
        return await self.client.post(
            f"{self.base}/actions/{name}", json=params or {}, headers=self.headers,
            params=query, timeout=120,
        )  # fmt: skip


@pytest.fixture(params=SANDBOXES)
def sandbox_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def blackbox_images() -> tuple[str, ...]:
    """HOMERUN_BLACKBOX_IMAGES of the `engine`'s controller and, unless `docker_options` say
    otherwise, of its invoker. Override per module or test."""
    return ()


@pytest.fixture
def docker_options(blackbox_images: tuple[str, ...]) -> dict[str, Any]:
    """Arguments of the `engine`'s docker sandbox. Override per module or test."""
    return {"blackbox_images": blackbox_images}


@pytest.fixture
async def engine(
    settings: Settings,
    redis_prefix: str,
    sandbox_kind: str,
    issue: Callable[..., Awaitable[Headers]],
    tmp_path: Path,
    blocking_wait_ms: int,
    engine_transport: str,
    blackbox_images: tuple[str, ...],
    docker_options: dict[str, Any],
) -> AsyncIterator[Engine]:
    """Seed API + executor + one invoker of the parametrized sandbox, on private Redis keys."""
    from redis.asyncio import Redis

    from invoker.main import make_worker

    await _reset(settings)
    limits = settings.limits.model_copy(update={"blocking_wait_ms": blocking_wait_ms})
    settings = settings.model_copy(
        update={
            "redis_url": REDIS_URL, "key_prefix": redis_prefix, "limits": limits,
            "blackbox_images": blackbox_images,
        }
    )  # fmt: skip
    invoker_settings = quick_invoker_settings(redis_prefix)
    invoker_id = invoker_settings.id
    redis = Redis.from_url(REDIS_URL)
    sandbox = make_sandbox(sandbox_kind, tmp_path, invoker_id, **docker_options)
    worker = make_worker(invoker_settings, redis, sandbox)
    app = create_app(settings)
    async with _serving(app, engine_transport) as http:
        admin = await issue(admin=True)
        created = await http.post("/runtime/admin/namespaces/acme/int1", headers=admin)
        assert created.status_code == 200, created.text
        running = asyncio.create_task(worker.run())
        await _until_registered(redis, redis_prefix, invoker_id)
        try:
            yield Engine(http, admin, worker, "/runtime/namespaces/acme/int1", settings)
        finally:
            worker.stop()
            try:
                await asyncio.wait_for(asyncio.shield(running), 30)
            except TimeoutError:
                for task in asyncio.all_tasks():  # show where the drain is stuck
                    task.print_stack(limit=6)
                raise
    await redis.aclose()


def quick_invoker_settings(prefix: str) -> Any:
    """A quick-beating invoker on the private Redis prefix, as the engine tests run it."""
    from invoker.settings import InvokerSettings

    return InvokerSettings(
        id=f"inv-{prefix}", redis_url=REDIS_URL, key_prefix=prefix, slots=8, memory_mb=4096,
        heartbeat_s=0.2, alive_ttl_s=2.0, drain_timeout_s=5.0, prewarm=False,
        work_dir=Path(tempfile.mkdtemp(prefix="hrw", dir="/tmp")),
    )  # fmt: skip


@pytest.fixture
def engine_transport() -> str:
    """How tests reach the `engine` app: "asgi" (in process) or "http" (a real uvicorn server
    on a loopback port). Override per module."""
    return "asgi"


@contextlib.asynccontextmanager
async def _serving(app: Any, transport: str) -> AsyncIterator[httpx.AsyncClient]:
    if transport == "asgi":
        async with (
            LifespanManager(app) as manager,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=manager.app), base_url="http://testserver"
            ) as http,
        ):
            yield http
        return
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    for _ in range(400):
        if server.started or serving.done():
            break
        await asyncio.sleep(0.025)
    assert server.started, "the test server did not start"
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            yield http
    finally:
        server.should_exit = True
        await serving


async def _until_registered(redis: Any, prefix: str, invoker_id: str) -> None:
    from invoker.protocol import Keys, live_invokers

    for _ in range(200):
        if any(i.id == invoker_id for i in await live_invokers(redis, Keys(prefix))):
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"invoker {invoker_id} did not register")


@pytest.fixture
def blocking_wait_ms() -> int:
    """How long blocking invocations wait in the `engine` app (override per module)."""
    return 60_000


async def activation_of(settings: Settings, activation_id: str, timeout_s: float = 20.0) -> Any:
    """The recorded activation, waiting for it to appear (records follow results)."""
    from controller.services import activations

    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        found = await in_transaction(settings, lambda s: activations.get(s, activation_id))
        if found is not None or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.05)


class RedisServer:
    """A redis-server of the test's own, without persistence unless `fsync` is given, that can
    be killed and started again on the same port: empty, or from its append-only file."""

    def __init__(self, tmp_path: Path, *, fsync: str | None = None) -> None:
        self.fsync = fsync  # with an append-only file, fsynced `always` or `everysec`
        binary = standalone._redis_server_binary()
        assert binary is not None, "no redis-server"
        self.binary, self.dir = binary, tmp_path
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--dir", str(self.dir), "--appendonly", "yes" if self.fsync else "no"]  # fmt: skip
        if self.fsync:
            args += ["--appendfsync", self.fsync]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                break
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)
        standalone._until_serving(self.url, self.process)  # its append-only file loaded

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()
