"""Client compatibility: the real `openwhisk` npm client drives a running `homerun standalone`.

`node_modules` is installed from the committed `js/package-lock.json` with `npm ci` when it is
missing or was installed from another lock (a stamp in `node_modules` records the lock's
digest), so a fresh clone only needs `node` and `npm` on PATH and the npm registry.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

JS_DIR = Path(__file__).resolve().parent / "js"
DRIVER = JS_DIR / "ow.js"
STAMP = JS_DIR / "node_modules" / ".homerun-lock-digest"
NPM_CI_TIMEOUT = 100  # seconds; a fresh install fetches a handful of small packages
START_TIMEOUT = 60  # seconds for `homerun standalone` (process sandbox: no image builds)
CALL_TIMEOUT = 90  # seconds for one client call (a blocking invoke waits up to 60 s)
# Variables the client reads on its own (proxies, `__OW_*` defaults): not from the caller's
# environment, so that every call goes straight to the server under test.
CLIENT_ENV = re.compile(r"^(__OW_|HTTPS?_PROXY$|PROXY$|NO_PROXY$)", re.IGNORECASE)


def _lock_digest() -> str:
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        digest.update((JS_DIR / name).read_bytes())
    return digest.hexdigest()


def _installed(digest: str) -> bool:
    return (
        STAMP.is_file()
        and STAMP.read_text() == digest
        and (JS_DIR / "node_modules" / "openwhisk" / "package.json").is_file()
    )


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _npm_ci(npm: str) -> None:
    command = [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"]
    try:
        done = subprocess.run(
            command, cwd=JS_DIR, capture_output=True, text=True, timeout=NPM_CI_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`npm ci` in {JS_DIR} took more than {NPM_CI_TIMEOUT} s", pytrace=False)
    if done.returncode != 0:
        pytest.fail(
            f"`npm ci` in {JS_DIR} failed ({done.returncode}); it needs the npm registry:\n"
            f"{done.stdout}{done.stderr}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def node() -> str:
    """The `node` binary, with the client installed in `js/node_modules`."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail(
            "the client-compatibility suite (tests/compat) needs `node` and `npm` on PATH "
            "(Debian: apt-get install nodejs npm)",
            pytrace=False,
        )
    digest = _lock_digest()
    with _locked(JS_DIR):  # another pytest run may be installing at the same time
        if not _installed(digest):
            _npm_ci(npm)
            STAMP.write_text(digest)
    return node


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass(frozen=True)
class Homerun:
    """A running standalone: its API host, the guest namespace's `uuid:key`, the operator
    token, and the whole banner it printed."""

    apihost: str
    auth: str
    operator_token: str
    banner: str


class Standalone:
    """`homerun standalone` (process sandbox) on a data directory and a port of its own,
    which it keeps across restarts (`stop`, then `start` again)."""

    def __init__(self) -> None:
        self.data = Path(tempfile.mkdtemp(prefix="hrcompat", dir="/tmp"))
        self.data.chmod(0o755)  # the process sandbox runs actions under other uids inside it
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> Homerun:
        env = {key: value for key, value in os.environ.items() if not key.startswith("HOMERUN_")}
        env |= {
            "HOMERUN_DATA_DIR": str(self.data),
            "HOMERUN_PORT": str(self.port),
            "HOMERUN_INVOKER_SANDBOX": "process",
        }
        self.starts += 1
        output = self.data / f"standalone-{self.starts}.log"
        with output.open("w") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "homerun.cli", "standalone"],
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        found = None
        while found is None and time.monotonic() < deadline and self.process.poll() is None:
            text = output.read_text()
            if "actions/hello -H" in text:  # the banner's last lines
                found = re.search(r"guest auth\s+(\S+:\S+)\n\s+operator token\s+(\S+)\n", text)
            time.sleep(0.1)
        assert found is not None, f"no banner from homerun standalone:\n{output.read_text()}"
        return Homerun(f"http://127.0.0.1:{self.port}", found[1], found[2], output.read_text())

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)
            self.process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.data, ignore_errors=True)


@pytest.fixture(scope="module")
def homerun() -> Iterator[Homerun]:
    """A fresh `homerun standalone` (process sandbox)."""
    standalone = Standalone()
    try:
        yield standalone.start()
    finally:
        standalone.remove()


class OpenWhiskJs:
    """Calls the npm client: `ow("actions.get", {"name": "x"})` is `ow.actions.get({name:
    "x"})` in JavaScript, returning what the promise resolved to; `ow.rejects(...)` expects
    the promise to reject with an `OpenWhiskError` and returns the outcome describing it."""

    def __init__(self, node: str, apihost: str, auth: str) -> None:
        self.apihost = apihost
        self.node = node
        self.env = {k: v for k, v in os.environ.items() if not CLIENT_ENV.match(k)}
        self.env |= {"HOMERUN_APIHOST": apihost, "HOMERUN_AUTH": auth}

    def outcome(
        self, call: str, options: Any = None, *, auth: str | None = None, **env: str
    ) -> Any:
        """What the call resolved or rejected to; `env` adds variables the client reads
        (e.g. `__OW_TRANSACTION_ID`)."""
        request = {"call": call, "options": options, "auth": auth}
        done = subprocess.run(
            [self.node, str(DRIVER), json.dumps(request)],
            cwd=JS_DIR,
            env=self.env | env,
            capture_output=True,
            text=True,
            timeout=CALL_TIMEOUT,
        )
        assert done.returncode == 0, f"{call}: the driver failed\n{done.stderr}"
        return json.loads(done.stdout)

    def __call__(
        self, call: str, options: Any = None, *, auth: str | None = None, **env: str
    ) -> Any:
        outcome = self.outcome(call, options, auth=auth, **env)
        assert outcome["ok"], f"{call}({options}) rejected: {outcome}"
        return outcome["value"]

    def rejects(
        self, call: str, options: Any = None, *, auth: str | None = None, **env: str
    ) -> Any:
        outcome = self.outcome(call, options, auth=auth, **env)
        assert not outcome["ok"], f"{call}({options}) resolved: {outcome['value']}"
        assert outcome["isOpenWhiskError"], outcome
        return outcome

    def eventually(
        self, call: str, options: Any, until: Callable[[Any], bool], timeout: float = 30
    ) -> Any:
        """The first value `call` resolves to that satisfies `until`, polling for `timeout`
        seconds (activation records are written after the invoke answers)."""
        deadline = time.monotonic() + timeout
        while True:
            outcome = self.outcome(call, options)
            if outcome["ok"] and until(outcome["value"]):
                return outcome["value"]
            assert time.monotonic() < deadline, f"{call}({options}) after {timeout} s: {outcome}"
            time.sleep(0.2)


@pytest.fixture(scope="module")
def ow(node: str, homerun: Homerun) -> OpenWhiskJs:
    return OpenWhiskJs(node, homerun.apihost, homerun.auth)


def buffer(data: bytes) -> dict[str, str]:
    """A Buffer argument for the driver (e.g. a zip action's code)."""
    return {"$buffer": base64.b64encode(data).decode()}


# --- the `aio` CLI (tests/compat/test_aio_cli.py) ------------------------------------------
#
# `aio/node_modules` holds `@adobe/aio-cli` (which bundles `@adobe/aio-cli-plugin-runtime`),
# installed from the committed `aio/package-lock.json` like `js/` above. It is ~1900 packages:
# a cold install takes a minute or two, a rerun with a warm npm cache (`--prefer-offline`)
# about as long (unpacking dominates), and an up-to-date `node_modules` is reused as is.
# Optional dependencies are kept: `aio app deploy` loads the web bundler, whose native binary
# for this platform is one.

AIO_DIR = Path(__file__).resolve().parent / "aio"
AIO_BIN = AIO_DIR / "node_modules" / ".bin" / "aio"
AIO_STAMP = AIO_DIR / "node_modules" / ".homerun-lock-digest"
AIO_NPM_CI = (
    "ci",
    "--no-audit",
    "--no-fund",
    "--ignore-scripts",
    "--prefer-offline",
    "--loglevel=error",
)
AIO_NPM_CI_TIMEOUT = 300  # seconds; a cold install took ~90 s on the development machine
AIO_CALL_TIMEOUT = 120  # seconds for one `aio` run (~3 s to start; a blocking invoke ≤ 60 s)
# What a test module using the `aio` fixture may take in all (pytest-timeout): its first test
# also waits for the install.
AIO_MODULE_TIMEOUT = AIO_NPM_CI_TIMEOUT + 2 * AIO_CALL_TIMEOUT
# Variables passed on from the caller's environment; everything else (AIO_*, WHISK_*,
# WSK_CONFIG_FILE, __OW_*, proxies, XDG_*, DEBUG, ...) would change where the CLI reads its
# configuration or sends its requests.
AIO_PASSED_ENV = ("PATH", "LANG", "LC_ALL", "TMPDIR")


def _aio_lock_digest() -> str:
    digest = hashlib.sha256(" ".join(AIO_NPM_CI).encode())
    for name in ("package.json", "package-lock.json"):
        digest.update((AIO_DIR / name).read_bytes())
    return digest.hexdigest()


def _aio_installed(digest: str) -> bool:
    plugin = AIO_DIR / "node_modules" / "@adobe" / "aio-cli-plugin-runtime" / "package.json"
    return (
        AIO_STAMP.is_file()
        and AIO_STAMP.read_text() == digest
        and AIO_BIN.is_file()
        and plugin.is_file()
    )


def _aio_npm_ci(npm: str) -> None:
    try:
        done = subprocess.run(
            [npm, *AIO_NPM_CI],
            cwd=AIO_DIR,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=AIO_NPM_CI_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(
            f"`npm {' '.join(AIO_NPM_CI)}` in {AIO_DIR} took more than {AIO_NPM_CI_TIMEOUT} s",
            pytrace=False,
        )
    if done.returncode != 0:
        pytest.fail(
            f"`npm ci` in {AIO_DIR} failed ({done.returncode}); it needs the npm registry:\n"
            f"{done.stdout}{done.stderr}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def aio() -> Path:
    """The `aio` executable, with `@adobe/aio-cli` installed in `aio/node_modules`."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail(
            "the `aio` CLI tests (tests/compat/test_aio_cli.py) need `node` (>= 20) and `npm` "
            "on PATH (Debian: apt-get install nodejs npm)",
            pytrace=False,
        )
    digest = _aio_lock_digest()
    with _locked(AIO_DIR):  # another pytest run may be installing at the same time
        if not _aio_installed(digest):
            _aio_npm_ci(npm)
            AIO_STAMP.write_text(digest)
    return AIO_BIN


class AioCli:
    """Runs `aio` against one Homerun as the guest namespace, with runtime auth (not Adobe's
    deploy service), a private HOME and working directory (no `~/.wskprops`, `~/.config/aio`,
    `.env` or `.aio` of the caller's), no telemetry and no update check; stdin is closed so
    that a prompt fails instead of waiting."""

    def __init__(self, aio: Path, apihost: str, auth: str, home: Path) -> None:
        self.aio = aio
        self.cwd = home / "work"
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.env = {key: os.environ[key] for key in AIO_PASSED_ENV if key in os.environ}
        self.env |= {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "AIO_RUNTIME_APIHOST": apihost,
            "AIO_RUNTIME_AUTH": auth,
            "AIO_RUNTIME_NAMESPACE": "guest",
            # create/update/delete go to Homerun, not to Adobe's deploy service with an IMS
            # token (aio-cli-plugin-runtime `src/DeployServiceCommand.js`)
            "USE_RUNTIME_AUTH": "true",
            # aio-cli-plugin-telemetry `src/telemetry-lib.js`: no events, no first-run notice
            "AIO_TELEMETRY_DISABLED": "true",
            # @oclif/plugin-warn-if-update-available: no background registry lookup
            "AIO_SKIP_NEW_VERSION_CHECK": "true",
            "FORCE_COLOR": "0",
        }

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """`aio *args` run to completion, whatever its exit status; `env` adds variables
        (e.g. `DEBUG="*"` to see the requests)."""
        try:
            return subprocess.run(
                [str(self.aio), *args],
                cwd=self.cwd,
                env=self.env | env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=AIO_CALL_TIMEOUT,
            )
        except subprocess.TimeoutExpired as expired:
            pytest.fail(f"`aio {' '.join(args)}` took more than {AIO_CALL_TIMEOUT} s: {expired}")

    def __call__(self, *args: str) -> str:
        """What `aio *args` printed on stdout; the command must succeed."""
        done = self.run(*args)
        assert done.returncode == 0, (
            f"`aio {' '.join(args)}` exited with {done.returncode}\n"
            f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        )
        return done.stdout

    def json(self, *args: str) -> Any:
        """What `aio *args` printed, parsed as JSON."""
        output = self(*args)
        try:
            return json.loads(output)
        except json.JSONDecodeError:
            pytest.fail(f"`aio {' '.join(args)}` did not print JSON:\n{output}")

    def fails(self, *args: str) -> str:
        """What `aio *args` printed on stderr; the command must fail."""
        done = self.run(*args)
        assert done.returncode != 0, f"`aio {' '.join(args)}` succeeded:\n{done.stdout}"
        return done.stderr

    def eventually(
        self, args: tuple[str, ...], until: Callable[[Any], bool], timeout: float = 30
    ) -> Any:
        """The first JSON output of `aio *args` that satisfies `until`, retrying for `timeout`
        seconds (activation records are written after the invoke answers)."""
        deadline = time.monotonic() + timeout
        while True:
            done = self.run(*args)
            if done.returncode == 0:
                with contextlib.suppress(json.JSONDecodeError):
                    value = json.loads(done.stdout)
                    if until(value):
                        return value
            assert time.monotonic() < deadline, (
                f"`aio {' '.join(args)}` after {timeout} s:\n{done.stdout}{done.stderr}"
            )
            time.sleep(0.5)


@pytest.fixture(scope="module")
def aio_cli(aio: Path, homerun: Homerun, tmp_path_factory: pytest.TempPathFactory) -> AioCli:
    return AioCli(aio, homerun.apihost, homerun.auth, tmp_path_factory.mktemp("aio-home"))
