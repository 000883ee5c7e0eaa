"""The execution behaviour suite: invoking actions through the seed API, end to end, on every
sandbox (process and docker) and for both runtimes. Where a guarantee needs a container
engine, the test says so and asserts what the process sandbox does give."""

from __future__ import annotations

import base64
import io
import zipfile
from typing import Any

import pytest

from tests.conftest import Engine, activation_of

NODE = "nodejs:18"
PYTHON = "python:3.11"
KINDS = [NODE, PYTHON]

SOURCES: dict[str, dict[str, str]] = {
    "hello": {
        NODE: "function main(p) { console.log('hello', p.name); console.error('to stderr');"
        " return {greeting: 'hello ' + p.name}; }",
        PYTHON: "def main(args):\n    print('hello', args.get('name'))\n"
        "    import sys\n    print('to stderr', file=sys.stderr)\n"
        "    return {'greeting': 'hello ' + args.get('name')}\n",
    },
    "app_error": {
        NODE: "function main() { return {error: 'bad input'}; }",
        PYTHON: "def main(args):\n    return {'error': 'bad input'}\n",
    },
    "throws": {
        NODE: "function main() { throw new Error('boom'); }",
        PYTHON: "def main(args):\n    raise ValueError('boom')\n",
    },
    "crash": {
        NODE: "function main() { process.exit(3); }",
        PYTHON: "import os\ndef main(args):\n    os._exit(3)\n",
    },
    "scalar": {
        NODE: "function main() { return 42; }",
        PYTHON: "def main(args):\n    return 42\n",
    },
    "sleepy": {
        NODE: "function main(p) { return new Promise(r => setTimeout(() => r({slept: p.ms}),"
        " p.ms)); }",
        PYTHON: "import time\ndef main(args):\n    time.sleep(args['ms'] / 1000)\n"
        "    return {'slept': args['ms']}\n",
    },
    "identity": {
        NODE: "const id = Math.random().toString(36).slice(2);\n"
        "function main() { return {container: id}; }",
        PYTHON: "import random\nID = str(random.random())\n"
        "def main(args):\n    return {'container': ID}\n",
    },
    "env": {
        NODE: "function main() { const e = process.env; return {init: e.MY_SETTING,"
        " ns: e.__OW_NAMESPACE, name: e.__OW_ACTION_NAME, id: e.__OW_ACTIVATION_ID,"
        " deadline: e.__OW_DEADLINE, host: e.__OW_API_HOST, key: e.__OW_API_KEY || null}; }",
        PYTHON: "import os\ndef main(args):\n    e = os.environ\n"
        "    return {'init': e.get('MY_SETTING'), 'ns': e.get('__OW_NAMESPACE'),"
        " 'name': e.get('__OW_ACTION_NAME'), 'id': e.get('__OW_ACTIVATION_ID'),"
        " 'deadline': e.get('__OW_DEADLINE'), 'host': e.get('__OW_API_HOST'),"
        " 'key': e.get('__OW_API_KEY')}\n",
    },
    "chatty": {
        NODE: "function main(p) { const line = 'x'.repeat(1023);"
        " for (let i = 0; i < p.lines; i++) console.log(line); return {}; }",
        PYTHON: "def main(args):\n    line = 'x' * 1023\n"
        "    for _ in range(args['lines']):\n        print(line)\n    return {}\n",
    },
    "memory_bomb": {
        NODE: "function main() { const hoard = []; while (true) {"
        " hoard.push(Buffer.alloc(16 * 1024 * 1024, 1)); } }",
        PYTHON: "def main(args):\n    hoard = []\n    while True:\n"
        "        hoard.append(bytearray(16 * 1024 * 1024))\n",
    },
    "fork_bomb": {
        NODE: "const cp = require('child_process');\nfunction main() {"
        " for (let i = 0; i < 5000; i++) { try { cp.spawn('sh', ['-c', 'sleep 30']); }"
        " catch (e) { return {stopped: i}; } } return {stopped: -1}; }",
        PYTHON: "import os, time\ndef main(args):\n    for i in range(5000):\n"
        "        try:\n            pid = os.fork()\n        except OSError:\n"
        "            return {'stopped': i}\n        if pid == 0:\n"
        "            time.sleep(30)\n            os._exit(0)\n    return {'stopped': -1}\n",
    },
    "big_result": {
        NODE: "function main() { return {blob: 'y'.repeat(2 * 1024 * 1024)}; }",
        PYTHON: "def main(args):\n    return {'blob': 'y' * (2 * 1024 * 1024)}\n",
    },
}


def zipped(kind: str) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        if kind == NODE:
            archive.writestr("package.json", '{"main": "lib/entry.js"}')
            archive.writestr("lib/entry.js", "exports.main = () => ({zipped: require('./x')});")
            archive.writestr("lib/x.js", "module.exports = 'node';")
        else:
            archive.writestr("__main__.py", "from helper import VALUE\n\ndef main(args):\n"
                             "    return {'zipped': VALUE}\n")  # fmt: skip
            archive.writestr("helper.py", "VALUE = 'python'\n")
    return base64.b64encode(buffer.getvalue()).decode()


def annotations(body: dict[str, Any]) -> dict[str, Any]:
    return {a["key"]: a["value"] for a in body["annotations"]}


@pytest.mark.parametrize("kind", KINDS)
async def test_success_then_warm(engine: Engine, kind: str) -> None:
    await engine.create("hello", SOURCES["hello"][kind], kind)
    first = await engine.invoke("hello", {"name": "world"})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["response"] == {
        "status": "success", "success": True, "result": {"greeting": "hello world"},
    }  # fmt: skip
    assert body["name"] == "hello" and body["namespace"] == "acme-int1"
    assert len(body["activationId"]) == 32 and body["version"] == "0.0.1"
    notes = annotations(body)
    assert notes["path"] == "acme-int1/hello" and notes["kind"] == kind
    assert "initTime" in notes and notes["timeout"] is False
    assert notes["limits"]["memory"] == 256 and isinstance(notes["waitTime"], int)
    second = await engine.invoke("hello", {"name": "again"})
    assert second.status_code == 200
    assert "initTime" not in annotations(second.json()), "the second invoke must be warm"
    record = await engine.activation(body["activationId"])
    assert record is not None and record.status_code == 0
    assert any(line.endswith("stdout: hello world") for line in record.logs), record.logs
    assert any(line.endswith("stderr: to stderr") for line in record.logs), record.logs
    assert all(line[:4].isdigit() and line[29] == "Z" for line in record.logs), record.logs


@pytest.mark.parametrize("kind", KINDS)
async def test_application_error_keeps_the_container(engine: Engine, kind: str) -> None:
    await engine.create("apperr", SOURCES["app_error"][kind], kind)
    first = await engine.invoke("apperr")
    assert first.status_code == 502
    assert first.json()["response"] == {
        "status": "application error", "success": False, "result": {"error": "bad input"},
    }  # fmt: skip
    second = await engine.invoke("apperr")
    assert "initTime" not in annotations(second.json())


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("throws", "boom"),
        ("crash", "The action did not produce a valid response and exited unexpectedly."),
        ("scalar", "The action did not return a dictionary."),
    ],
)
async def test_developer_errors(engine: Engine, kind: str, source: str, message: str) -> None:
    await engine.create(source, SOURCES[source][kind], kind)
    response = await engine.invoke(source)
    assert response.status_code == 502, response.text
    result = response.json()["response"]
    assert result["status"] == "action developer error" and result["success"] is False
    assert message in str(result["result"]["error"])
    again = await engine.invoke(source)
    assert "initTime" in annotations(again.json()), "a developer error destroys the container"
    record = await engine.activation(response.json()["activationId"])
    assert record.logs[-1].endswith(
        "stderr: The action did not initialize or run as expected. Log data might be missing."
    )


@pytest.mark.parametrize("kind", KINDS)
async def test_timeout_kills_the_container(engine: Engine, kind: str) -> None:
    await engine.create("sleepy", SOURCES["sleepy"][kind], kind, limits={"timeout": 500})
    response = await engine.invoke("sleepy", {"ms": 3000})
    assert response.status_code == 502
    body = response.json()
    assert body["response"]["result"] == {
        "error": "The action exceeded its time limits of 500 milliseconds."
    }
    assert annotations(body)["timeout"] is True
    fresh = await engine.invoke("sleepy", {"ms": 1})
    assert fresh.status_code == 200 and fresh.json()["response"]["result"] == {"slept": 1}
    assert "initTime" in annotations(fresh.json()), "the timed-out container was destroyed"


@pytest.mark.parametrize("kind", KINDS)
async def test_memory_bomb(engine: Engine, kind: str, sandbox_kind: str) -> None:
    await engine.create("bomb", SOURCES["memory_bomb"][kind], kind, limits={"memory": 128})
    response = await engine.invoke("bomb")
    assert response.status_code == 502
    result = response.json()["response"]
    assert result["status"] == "action developer error"
    if sandbox_kind == "docker":
        assert result["result"] == {"error": "The action exhausted its memory and was aborted."}
    else:
        # Without a container engine there is no memory cgroup: the process sandbox bounds
        # private writable memory with RLIMIT_DATA, so allocations fail inside the action
        # and it ends as a developer error (or as OOM when the runtime dies of it).
        error = str(result["result"]["error"])
        assert error == "The action exhausted its memory and was aborted." or any(
            marker in error for marker in ("MemoryError", "allocation failed", "out of memory")
        ), error
    await engine.create("after", SOURCES["hello"][kind], kind)
    after = await engine.invoke("after", {"name": "still here"})
    assert after.status_code == 200, "the invoker keeps serving"


@pytest.mark.parametrize("kind", KINDS)
async def test_fork_bomb_is_contained(engine: Engine, kind: str, sandbox_kind: str) -> None:
    await engine.create("forks", SOURCES["fork_bomb"][kind], kind, limits={"timeout": 5000})
    response = await engine.invoke("forks")
    # Docker's pids limit, or the process sandbox's per-user process limit, stops it early.
    body = response.json()
    assert response.status_code in (200, 502), response.text
    if response.status_code == 200:
        assert 0 <= body["response"]["result"]["stopped"] < 5000
    await engine.create("after", SOURCES["hello"][kind], kind)
    after = await engine.invoke("after", {"name": "still here"})
    assert after.status_code == 200, "the invoker keeps serving"


@pytest.mark.parametrize("kind", KINDS)
async def test_logs_are_truncated_at_the_limit(engine: Engine, kind: str) -> None:
    await engine.create("chatty", SOURCES["chatty"][kind], kind, limits={"logs": 1})
    response = await engine.invoke("chatty", {"lines": 2000})
    assert response.status_code == 200
    record = await engine.activation(response.json()["activationId"])
    assert record.logs[-1].endswith(
        "stderr: Logs were truncated because the total bytes size exceeds the limit of "
        "1048576 bytes."
    )
    assert 900 <= len(record.logs) <= 1025
    following = await engine.invoke("chatty", {"lines": 3})
    logs = (await engine.activation(following.json()["activationId"])).logs
    assert len(logs) == 3, "each activation gets its own lines, framed by the sentinels"


@pytest.mark.parametrize("kind", KINDS)
async def test_zip_action(engine: Engine, kind: str) -> None:
    created = await engine.create("zipped", zipped(kind), kind)
    assert created["exec"]["binary"] is True
    response = await engine.invoke("zipped")
    assert response.status_code == 200, response.text
    expected = "node" if kind == NODE else "python"
    assert response.json()["response"]["result"] == {"zipped": expected}


@pytest.mark.parametrize("kind", KINDS)
async def test_environment(engine: Engine, kind: str) -> None:
    params = [{"key": "MY_SETTING", "value": "from-init", "init": True}]
    await engine.create("env", SOURCES["env"][kind], kind, params=params)
    response = await engine.invoke("env")
    assert response.status_code == 200, response.text
    result = response.json()["response"]["result"]
    assert result["init"] == "from-init"
    assert result["ns"] == "acme-int1" and result["name"] == "/acme-int1/env"
    assert result["id"] == response.json()["activationId"]
    assert int(result["deadline"]) > 0 and result["host"].startswith("http")
    assert result["key"] is None, "provide-api-key is false on new actions"


@pytest.mark.parametrize("kind", KINDS)
async def test_versions_never_share_a_container(engine: Engine, kind: str) -> None:
    await engine.create("ident", SOURCES["identity"][kind], kind)
    first = (await engine.invoke("ident")).json()["response"]["result"]["container"]
    assert (await engine.invoke("ident")).json()["response"]["result"]["container"] == first
    updated = await engine.client.put(
        f"{engine.base}/actions/ident", json={"annotations": [{"key": "v", "value": 2}]},
        headers=engine.headers,
    )  # fmt: skip
    assert updated.json()["version"] == "0.0.2"
    second = await engine.invoke("ident")
    assert "initTime" in annotations(second.json())
    assert second.json()["response"]["result"]["container"] != first


@pytest.mark.parametrize("kind", KINDS)
async def test_result_over_the_limit(engine: Engine, kind: str) -> None:
    await engine.create("big", SOURCES["big_result"][kind], kind)
    response = await engine.invoke("big")
    assert response.status_code == 502
    error = response.json()["response"]["result"]["error"]
    assert error.startswith("The action produced a response that exceeded the allowed length: ")
    assert "> 1048576 bytes. The truncated response was: " in error


async def test_non_blocking_invoke_is_recorded(engine: Engine) -> None:
    await engine.create("hello", SOURCES["hello"][NODE])
    response = await engine.invoke("hello", {"name": "later"}, blocking="false")
    assert response.status_code == 202
    activation_id = response.json()["activationId"]
    record = await engine.activation(activation_id)
    assert record is not None and record.response["result"] == {"greeting": "hello later"}


async def test_parameters_merge_over_the_actions_own(engine: Engine) -> None:
    source = "function main(p) { return p; }"
    params = [{"key": "a", "value": 1}, {"key": "b", "value": "default"}]
    await engine.create("echo", source, params=params)
    response = await engine.invoke("echo", {"b": "override", "c": True})
    assert response.json()["response"]["result"] == {"a": 1, "b": "override", "c": True}


async def test_execute_errors(engine: Engine) -> None:
    missing = await engine.invoke("nope")
    assert missing.status_code == 404
    await engine.create("hello", SOURCES["hello"][NODE])
    too_big = await engine.client.post(
        f"{engine.base}/actions/hello", content=b'{"x":"' + b"z" * (1024 * 1024) + b'"}',
        headers={**engine.headers, "content-type": "application/json"},
    )  # fmt: skip
    assert too_big.status_code == 413
    assert too_big.json()["error"].startswith("Request larger than allowed:")
    not_object = await engine.client.post(
        f"{engine.base}/actions/hello", json=[1, 2], headers=engine.headers
    )
    assert not_object.status_code == 400
    bad_flag = await engine.invoke("hello", blocking="maybe")
    assert bad_flag.status_code == 400


class TestBlockingWait:
    @pytest.fixture
    def blocking_wait_ms(self) -> int:
        return 300

    async def test_slow_blocking_invoke_answers_202_and_completes(self, engine: Engine) -> None:
        await engine.create("sleepy", SOURCES["sleepy"][NODE])
        response = await engine.invoke("sleepy", {"ms": 1500})
        assert response.status_code == 202
        record = await engine.activation(response.json()["activationId"])
        assert record is not None and record.response["result"] == {"slept": 1500}


async def test_sequence_runs_components_in_order(engine: Engine) -> None:
    await engine.create("add", "function main(p) { return {n: (p.n || 0) + 1, seen: p.tag}; }")
    await engine.create("double", "function main(p) { return {n: p.n * 2}; }")
    await engine.create("fail", "function main(p) { return {error: 'stop at ' + p.n}; }")
    seq = {"name": "calc", "exec": {"kind": "sequence", "components": ["add", "double", "add"]}}
    created = await engine.client.post(f"{engine.base}/actions", json=seq, headers=engine.headers)
    assert created.status_code == 200, created.text
    response = await engine.invoke("calc", {"n": 1, "tag": "x"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["response"]["result"] == {"n": 5}, "(1+1)*2+1, and only the first sees tag"
    record = await engine.activation(body["activationId"])
    assert len(record.logs) == 3, "the sequence's logs are its component activation ids"
    notes = record.annotation_map
    assert notes["kind"] == "sequence" and notes["topmost"] is True
    components = [await engine.activation(i) for i in record.logs]
    assert all(c.cause == body["activationId"] for c in components)
    assert record.duration == sum(c.duration for c in components)

    short = {"name": "broken", "exec": {"kind": "sequence", "components": ["add", "fail", "add"]}}
    await engine.client.post(f"{engine.base}/actions", json=short, headers=engine.headers)
    stopped = await engine.invoke("broken", {"n": 1})
    assert stopped.status_code == 502
    assert stopped.json()["response"]["result"] == {"error": "stop at 2"}
    record = await engine.activation(stopped.json()["activationId"])
    assert len(record.logs) == 2, "the first error stops the sequence"


async def test_sequence_with_a_public_catalog_component(engine: Engine) -> None:
    await engine.create(
        "shout", "function main(p) { return {text: String(p.text).toUpperCase()}; }"
    )
    seq = {
        "name": "echoshout",
        "exec": {"kind": "sequence", "components": ["/whisk.system/utils/echo", "shout"]},
    }
    created = await engine.client.post(f"{engine.base}/actions", json=seq, headers=engine.headers)
    assert created.status_code == 200, created.text
    response = await engine.invoke("echoshout", {"text": "hi"})
    assert response.status_code == 200, response.text
    assert response.json()["response"]["result"] == {"text": "HI"}


async def test_a_namespace_can_drop_successful_blocking_activations(engine: Engine) -> None:
    from controller.services import activations, namespaces
    from controller.setup import in_transaction

    await in_transaction(
        engine.settings,
        lambda s: namespaces.set_option(s, "acme-int1", activations.DROP_BLOCKING_SUCCESSES, True),
    )
    await engine.create("hello", SOURCES["hello"][NODE])
    await engine.create("apperr", SOURCES["app_error"][NODE])
    dropped = await engine.invoke("hello", {"name": "gone"})
    assert dropped.status_code == 200, "the caller still gets the result"
    failed = await engine.invoke("apperr")
    later = await engine.invoke("hello", {"name": "kept"}, blocking="false")
    assert await engine.activation(later.json()["activationId"]) is not None
    assert await engine.activation(failed.json()["activationId"]) is not None
    assert await activation_of(engine.settings, dropped.json()["activationId"], 1.0) is None
