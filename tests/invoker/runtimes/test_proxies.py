"""The action proxies (invoker/runtimes/*/proxy.*) run as host processes, as the process sandbox
runs them, and driven over their unix socket: the /init and /run protocol, results and failure
messages, environment, log sentinels, keep-alive. Each nodejs kind runs with the node and modules
`deploy/runtimes/build.sh --host` laid out for it (invoker.runtimes.host_node)."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from invoker.runtimes import HostNode, host_node
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
    module_params,
    pinned_node,
    zip_base64,
)

RUNTIMES_DIR = REPO / "invoker" / "runtimes"
NOT_A_DICTIONARY = {"error": "The action did not return a dictionary."}
CONTEXT = {
    "namespace": "guest",
    "action_name": "/guest/pkg/hello",
    "action_version": "0.0.7",
    "activation_id": "c7bbd8a1f0a64b8cbbd8a1f0a68b8c01",
    "transaction_id": "Xk3bTransaction",
    "deadline": "1700000060000",
    "api_key": "uuid:secret",
}


def node_for(kind: str) -> HostNode:
    node = host_node(kind)
    if node is None:
        pytest.fail(
            f"no node {kind.split(':')[1]} on this host for {kind}: "
            f"run `deploy/runtimes/build.sh --host {kind}` (or `--host` for every kind)"
        )
    return node


def command(kind: str) -> tuple[list[str], dict[str, str]]:
    """The command line that runs `kind`'s proxy, and the environment variables it adds."""
    if family(kind) == "nodejs":
        node = node_for(kind)
        env = {} if node.modules is None else {"NODE_PATH": str(node.modules)}
        return [str(node.node), str(RUNTIMES_DIR / "nodejs" / "proxy.js")], env
    return [sys.executable, "-u", str(RUNTIMES_DIR / "python" / "proxy.py")], {}


class HostProxy(ProxyClient):
    """A proxy process with its stdout and stderr pipes, read without blocking."""

    def __init__(self, kind: str, directory: Path) -> None:
        super().__init__(directory / "action.sock")
        self.kind = kind
        self.runtime = family(kind)  # what SOURCES and ZIPPED are keyed by
        argv, extra = command(kind)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("__OW_", "MY_")) and k != "NODE_PATH"
        }
        env |= extra | {"HOMERUN_SOCKET": str(self.socket_path)}
        self.process = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self._pending = {"stdout": b"", "stderr": b""}
        assert self.process.stdout is not None and self.process.stderr is not None
        self._pipes = {"stdout": self.process.stdout, "stderr": self.process.stderr}
        for pipe in self._pipes.values():
            os.set_blocking(pipe.fileno(), False)

    def alive(self) -> bool:
        return self.process.poll() is None

    def lines(self, stream: str) -> list[str]:
        """The complete lines written to `stream` since the last call (what the pipe holds now)."""
        fd = self._pipes[stream].fileno()
        data = self._pending[stream]
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            data += chunk
        *complete, self._pending[stream] = data.split(b"\n")
        return [line.decode() for line in complete]

    def stop(self) -> None:
        self.close()
        if self.alive():
            self.process.kill()
        self.process.wait(timeout=10)
        for pipe in self._pipes.values():
            pipe.close()


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def launch(kind: str) -> Iterator[Callable[[], HostProxy]]:
    """Starts proxies of `kind` (each in a short temp dir) and always kills them."""
    started: list[tuple[HostProxy, Path]] = []

    def start() -> HostProxy:
        directory = Path(tempfile.mkdtemp(prefix="hr-", dir="/tmp"))
        proxy = HostProxy(kind, directory)
        started.append((proxy, directory))
        proxy.wait_healthy(proxy.alive, 15, f"{kind} proxy, stderr: {proxy.lines('stderr')}")
        return proxy

    yield start
    for proxy, directory in started:
        proxy.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def proxy(launch: Callable[[], HostProxy]) -> HostProxy:
    return launch()


def initialized(proxy: HostProxy, case: str, **kwargs: Any) -> HostProxy:
    response = proxy.init(SOURCES[case][proxy.runtime], **kwargs)
    assert response.status_code == 200, response.text
    assert response.json() == {"ok": True}
    return proxy


# ---- start-up and protocol -------------------------------------------------------------------


def test_health_answers_ok_and_the_socket_is_world_writable(proxy: HostProxy) -> None:
    response = proxy.http.get("/health")
    assert (response.status_code, response.json()) == (200, {"ok": True})
    assert stat.S_IMODE(proxy.socket_path.stat().st_mode) == 0o666
    assert proxy.lines("stdout") == [] and proxy.lines("stderr") == []


def test_a_stale_socket_file_is_replaced(kind: str) -> None:
    directory = Path(tempfile.mkdtemp(prefix="hr-", dir="/tmp"))
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(directory / "action.sock"))  # bound, never listening: connecting is refused
    stale.close()
    proxy = HostProxy(kind, directory)
    try:
        proxy.wait_healthy(proxy.alive, 15, f"{kind} proxy with a stale socket")
    finally:
        proxy.stop()
        shutil.rmtree(directory, ignore_errors=True)


def test_sigterm_ends_the_proxy_and_removes_its_socket(proxy: HostProxy) -> None:
    proxy.process.send_signal(signal.SIGTERM)
    assert proxy.process.wait(timeout=10) == 0
    assert not proxy.socket_path.exists()


def test_init_then_run(proxy: HostProxy) -> None:
    initialized(proxy, "echo")
    response = proxy.run({"name": "World", "nested": {"list": [1, 2]}}, **CONTEXT)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"params": {"name": "World", "nested": {"list": [1, 2]}}}


def test_main_defaults_to_main_when_empty(proxy: HostProxy) -> None:
    initialized(proxy, "echo", main="")
    assert proxy.run({"a": 1}).json() == {"params": {"a": 1}}


def test_a_custom_entry_point_name(proxy: HostProxy) -> None:
    initialized(proxy, "greet", main="greet")
    assert proxy.run({"name": "you"}).json() == {"greeting": "hello you"}


@pytest.mark.parametrize("kind", NODE_KINDS)
@pytest.mark.parametrize(
    "source",
    [
        "module.exports = {main: (params) => ({params})};",
        "exports.main = function (params) { return {params}; };",
        "const main = (params) => ({params});",
        "'use strict';\nfunction main(params) { return {params}; }\n// a trailing comment",
    ],
    ids=["module.exports", "exports.main", "const", "use-strict"],
)
def test_nodejs_entry_point_forms(proxy: HostProxy, source: str) -> None:
    assert proxy.init(source).status_code == 200
    assert proxy.run({"x": 1}).json() == {"params": {"x": 1}}


@pytest.mark.parametrize("stored", [False, True], ids=["deflated", "stored"])
def test_zip_action(proxy: HostProxy, stored: bool) -> None:
    files = ZIPPED[proxy.runtime]
    code = zip_base64(files, frozenset(files) if stored else frozenset())
    response = proxy.init(code, binary=True)
    assert response.status_code == 200, response.text
    assert proxy.run({"n": 21}).json() == {"doubled": 42}


@pytest.mark.parametrize("kind", NODE_KINDS)
def test_nodejs_zip_with_index_js_and_directories(proxy: HostProxy) -> None:
    files = {
        "index.js": "const data = require('./data/answer.json');\nexports.main = () => data;\n",
        "data/answer.json": '{"answer": 42}',
    }
    assert proxy.init(zip_base64(files), binary=True).status_code == 200
    assert proxy.run().json() == {"answer": 42}


def test_init_env_reaches_the_action(proxy: HostProxy) -> None:
    initialized(proxy, "env", env={"MY_SETTING": "abc", "MY_EMPTY": ""})
    assert proxy.run().json() == {"MY_SETTING": "abc", "MY_EMPTY": ""}


def test_run_context_becomes_ow_environment(proxy: HostProxy) -> None:
    initialized(proxy, "env")
    body = proxy.run({"ignored": True}, **CONTEXT).json()
    assert body == {f"__OW_{key.upper()}": value for key, value in CONTEXT.items()}
    second = proxy.run(activation_id="second", deadline="1700000099999").json()
    assert second["__OW_ACTIVATION_ID"] == "second"
    assert second["__OW_DEADLINE"] == "1700000099999"


# ---- results --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "result",
    [{"a": 1, "b": [True, None, "x"]}, [1, {"two": 2}], {"error": "bad input"}, {}, []],
    ids=["object", "array", "error-object", "empty-object", "empty-array"],
)
def test_objects_and_arrays_are_the_response(proxy: HostProxy, result: Any) -> None:
    initialized(proxy, "returns")
    response = proxy.run({"result": result})
    assert (response.status_code, response.json()) == (200, result)


@pytest.mark.parametrize(
    "value",
    [{}, {"result": None}, {"result": "text"}, {"result": 42}, {"result": True}],
    ids=["nothing", "null", "string", "number", "boolean"],
)
def test_other_results_are_not_a_dictionary(proxy: HostProxy, value: dict[str, Any]) -> None:
    initialized(proxy, "returns")
    response = proxy.run(value)
    assert (response.status_code, response.json()) == (502, NOT_A_DICTIONARY)


def test_unserialisable_result_is_not_a_dictionary(proxy: HostProxy) -> None:
    initialized(proxy, "unserialisable")
    response = proxy.run()
    assert (response.status_code, response.json()) == (502, NOT_A_DICTIONARY)


def test_thrown_error_is_502_with_the_stack_on_stderr(proxy: HostProxy) -> None:
    initialized(proxy, "throws")
    response = proxy.run({"fail": True})
    assert response.status_code == 502
    assert response.json() == {"error": "An error has occurred: boom"}
    stderr = proxy.lines("stderr")
    assert stderr[-1] == SENTINEL
    assert any("boom" in line for line in stderr[:-1])
    assert len(stderr) > 2, "a stack trace, not just the message"
    assert proxy.lines("stdout") == [SENTINEL]
    # The process survives and runs the action again.
    assert proxy.alive()
    assert proxy.run({"n": 2}).json() == {"ok": 2}


def test_async_result_is_awaited(proxy: HostProxy) -> None:
    initialized(proxy, "async")
    assert proxy.run({"x": "done"}).json() == {"later": "done"}


def test_rejected_promise_is_an_error(proxy: HostProxy) -> None:
    initialized(proxy, "rejects")
    response = proxy.run()
    assert (response.status_code, response.json()) == (
        502,
        {"error": "An error has occurred: nope"},
    )


def test_action_exiting_drops_the_connection(proxy: HostProxy) -> None:
    initialized(proxy, "exits")
    with pytest.raises(httpx.TransportError):
        proxy.run()
    assert proxy.process.wait(timeout=10) == 3


# ---- refusals -------------------------------------------------------------------------------


def test_second_init_is_refused(proxy: HostProxy) -> None:
    initialized(proxy, "echo")
    response = proxy.init(SOURCES["greet"][proxy.runtime], main="greet")
    assert response.status_code == 403
    assert response.json() == {"error": "Cannot initialize the action more than once."}
    assert proxy.run({"still": "echo"}).json() == {"params": {"still": "echo"}}


def test_run_before_init_is_refused(proxy: HostProxy) -> None:
    response = proxy.run()
    assert response.status_code == 403
    assert response.json() == {"error": "Cannot run the action before it is initialized."}


@pytest.mark.parametrize("path", ["/init", "/run"])
def test_malformed_json_is_400(proxy: HostProxy, path: str) -> None:
    response = proxy.http.post(path, content=b'{"value": ')
    assert response.status_code == 400
    assert "JSON" in response.json()["error"]
    # The connection is still usable.
    assert proxy.http.get("/health").status_code == 200


def test_unknown_route_is_404(proxy: HostProxy) -> None:
    assert proxy.http.get("/nope").status_code == 404


def _init_failure(proxy: HostProxy, code: str, **kwargs: Any) -> str:
    response = proxy.init(code, **kwargs)
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert isinstance(error, str)
    # A failed init prints nothing: no activation logs to frame.
    assert proxy.lines("stdout") == [] and proxy.lines("stderr") == []
    return error


def test_syntax_error_fails_init(proxy: HostProxy) -> None:
    error = _init_failure(proxy, SOURCES["syntax_error"][proxy.runtime])
    assert error.startswith("Initialization has failed due to: SyntaxError"), error
    assert re.search(r"(:|line )2\b", error), f"the message should say which line: {error}"


def test_missing_main_fails_init(proxy: HostProxy) -> None:
    error = _init_failure(proxy, SOURCES["no_main"][proxy.runtime])
    assert error == "Action entrypoint 'main' is not a function."


def test_missing_custom_main_fails_init(proxy: HostProxy) -> None:
    error = _init_failure(proxy, SOURCES["echo"][proxy.runtime], main="handler")
    assert error == "Action entrypoint 'handler' is not a function."


def test_missing_code_fails_init(proxy: HostProxy) -> None:
    assert _init_failure(proxy, "") == "Missing main/no code to execute."


@pytest.mark.parametrize(
    "code",
    ["this is not base64!", "aGVsbG8gd29ybGQ=", zip_base64({"README.md": "no entry point"})],
    ids=["not-base64", "not-a-zip", "no-entry-file"],
)
def test_bad_zip_fails_init(proxy: HostProxy, code: str) -> None:
    error = _init_failure(proxy, code, binary=True)
    assert error.startswith("Initialization has failed due to: ")


def test_zip_entries_outside_the_archive_fail_init(proxy: HostProxy) -> None:
    files = {**ZIPPED[proxy.runtime], "../escaped.txt": "x"}
    error = _init_failure(proxy, zip_base64(files), binary=True)
    assert "outside the archive" in error


def test_failed_init_can_be_retried(proxy: HostProxy) -> None:
    _init_failure(proxy, SOURCES["syntax_error"][proxy.runtime])
    initialized(proxy, "echo")
    assert proxy.run({"a": 1}).json() == {"params": {"a": 1}}


# ---- logs -----------------------------------------------------------------------------------


def test_each_run_ends_both_streams_with_one_sentinel_before_responding(proxy: HostProxy) -> None:
    initialized(proxy, "logs")
    assert proxy.lines("stdout") == [] and proxy.lines("stderr") == []
    for n in range(3):
        response = proxy.run({"n": n})
        assert response.json() == {"n": n}
        # Read right after the response, without waiting: the sentinels were written first.
        assert proxy.lines("stdout") == [f"out {n}", SENTINEL]
        assert proxy.lines("stderr") == [f"err {n}", SENTINEL]


def test_refused_and_failed_runs_also_end_with_sentinels(proxy: HostProxy) -> None:
    assert proxy.run().status_code == 403
    assert proxy.lines("stdout") == [SENTINEL] and proxy.lines("stderr") == [SENTINEL]
    initialized(proxy, "returns")
    assert proxy.run({"result": 1}).status_code == 502
    assert proxy.lines("stdout") == [SENTINEL] and proxy.lines("stderr") == [SENTINEL]


# ---- keep-alive -----------------------------------------------------------------------------


class CountingUnixConnection(http.client.HTTPConnection):
    """http.client over a unix socket, counting how many connections it opened."""

    def __init__(self, path: Path) -> None:
        super().__init__("action", timeout=30)
        self.socket_path = path
        self.connects = 0

    def connect(self) -> None:
        self.connects += 1
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(str(self.socket_path))

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body)
        headers = {} if data is None else {"Content-Type": "application/json"}
        self.request(method, path, body=data, headers=headers)
        response = self.getresponse()
        payload = json.loads(response.read())
        assert not response.will_close, "the proxy asked to close the connection"
        return response.status, payload


def test_many_runs_over_one_keep_alive_connection(proxy: HostProxy) -> None:
    connection = CountingUnixConnection(proxy.socket_path)
    try:
        assert connection.call("GET", "/health") == (200, {"ok": True})
        code = SOURCES["throws"][proxy.runtime]
        assert connection.call("POST", "/init", {"value": {"code": code}}) == (200, {"ok": True})
        for n in range(40):
            failing = n % 10 == 9
            status, body = connection.call(
                "POST", "/run", {"value": {"n": n, "fail": failing}, "activation_id": str(n)}
            )
            if failing:
                assert (status, body) == (502, {"error": "An error has occurred: boom"})
            else:
                assert (status, body) == (200, {"ok": n})
            proxy.lines("stdout")
            proxy.lines("stderr")  # keep the pipes drained
        assert connection.connects == 1
    finally:
        connection.close()
    assert proxy.alive()


# ---- nodejs: each kind's node and preinstalled modules on this host ---------------------------


@pytest.mark.parametrize("kind", NODE_KINDS)
def test_each_nodejs_kind_runs_its_own_node(proxy: HostProxy) -> None:
    node = node_for(proxy.kind)
    assert proxy.process.args[0] == str(node.node)
    assert node.modules is not None, f"no preinstalled modules: run build.sh --host {proxy.kind}"
    source = "function main() { return {node: process.versions.node}; }\n"
    assert proxy.init(source).status_code == 200
    assert proxy.run().json() == {"node": pinned_node(proxy.kind)}


@pytest.mark.parametrize("kind", NODE_KINDS)
def test_preinstalled_modules_resolve_from_a_plain_action(proxy: HostProxy) -> None:
    assert proxy.init(MODULES_SOURCE).status_code == 200
    response = proxy.run(module_params(proxy.kind))
    assert response.status_code == 200, response.text
    check_modules(proxy.kind, response.json(), str(node_for(proxy.kind).modules))


@pytest.mark.parametrize("kind", NODE_KINDS)
def test_preinstalled_modules_resolve_from_a_zip_action(proxy: HostProxy) -> None:
    response = proxy.init(zip_base64({"index.js": MODULES_SOURCE}), binary=True)
    assert response.status_code == 200, response.text
    response = proxy.run(module_params(proxy.kind))
    assert response.status_code == 200, response.text
    check_modules(proxy.kind, response.json(), str(node_for(proxy.kind).modules))


@pytest.mark.parametrize("kind", NODE_KINDS)
def test_a_zips_own_node_modules_win(proxy: HostProxy) -> None:
    response = proxy.init(zip_base64(OWN_OPENWHISK), binary=True)
    assert response.status_code == 200, response.text
    assert proxy.run().json() == {
        "marker": "shipped with the zip",
        "express": "function",
        "expressAt": f"{node_for(proxy.kind).modules}/express/index.js",
    }
