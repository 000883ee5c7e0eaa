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


@pytest.fixture(scope="module")
def homerun() -> Iterator[tuple[str, str]]:
    """A fresh `homerun standalone` (process sandbox); yields (apihost, guest `uuid:key`)."""
    data = Path(tempfile.mkdtemp(prefix="hrcompat", dir="/tmp"))
    data.chmod(0o755)  # the process sandbox runs actions under other uids inside it
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("HOMERUN_")}
    env |= {
        "HOMERUN_DATA_DIR": str(data),
        "HOMERUN_PORT": str(port),
        "HOMERUN_INVOKER_SANDBOX": "process",
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
        deadline = time.monotonic() + START_TIMEOUT
        auth = None
        while auth is None and time.monotonic() < deadline and process.poll() is None:
            auth = re.search(r"guest auth\s+(\S+:\S+)\n", output.read_text())
            time.sleep(0.1)
        assert auth is not None, f"no banner from homerun standalone:\n{output.read_text()}"
        yield f"http://127.0.0.1:{port}", auth[1]
    finally:
        _stop(process)
        shutil.rmtree(data, ignore_errors=True)


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
def ow(node: str, homerun: tuple[str, str]) -> OpenWhiskJs:
    return OpenWhiskJs(node, *homerun)


def buffer(data: bytes) -> dict[str, str]:
    """A Buffer argument for the driver (e.g. a zip action's code)."""
    return {"$buffer": base64.b64encode(data).decode()}
