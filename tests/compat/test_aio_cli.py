"""The `aio` CLI (`@adobe/aio-cli` with its bundled runtime plugin) against `homerun standalone`:
`aio runtime` action, activation and namespace commands with runtime auth, asserting on what
the CLI prints (adobe-runtime.md §5, openwhisk.md §12)."""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any

import pytest

from tests.compat.conftest import AIO_MODULE_TIMEOUT, AioCli, Homerun

pytestmark = [pytest.mark.slow, pytest.mark.timeout(AIO_MODULE_TIMEOUT)]

ACTIVATION_ID = re.compile(r"^[0-9a-f]{32}$")
HELLO = """\
function main(params) {
  console.log('hello from ' + params.name)
  return { greeting: 'Hello, ' + params.name + '!' }
}
"""
FAILING = "function main(params) { return { error: 'no ' + params.name } }\n"


def source(aio_cli: AioCli, filename: str, code: str) -> str:
    """`code` saved as `filename` in the CLI's working directory; returns the path to pass."""
    (aio_cli.cwd / filename).write_text(code)
    return filename


def annotation(entity: dict[str, Any], key: str) -> Any:
    return next(a["value"] for a in entity["annotations"] if a["key"] == key)


@pytest.fixture(scope="module")
def hello(aio_cli: AioCli) -> Any:
    """`aio rt action create hello hello.js --json`: what the CLI printed."""
    return aio_cli.json(
        "rt", "action", "create", "hello", source(aio_cli, "hello.js", HELLO), "--json"
    )


@pytest.fixture(scope="module")
def activation(aio_cli: AioCli, hello: Any) -> Any:
    """`aio rt action invoke hello -p name x -b`: the activation record the CLI printed."""
    return aio_cli.json("rt", "action", "invoke", "hello", "-p", "name", "x", "-b")


def default_kind(apihost: str, language: str) -> str:
    with urllib.request.urlopen(f"{apihost}/", timeout=10) as response:
        runtimes = json.load(response)["runtimes"][language]
    kind: str = next(runtime["kind"] for runtime in runtimes if runtime["default"])
    return kind


# --- actions -------------------------------------------------------------------------------


def test_action_create_from_a_js_file_gets_the_default_nodejs_kind(
    hello: Any, homerun: Homerun
) -> None:
    # the CLI sends `nodejs:default` for a .js file; Homerun stores the concrete default kind
    kind = default_kind(homerun.apihost, "nodejs")
    assert hello["namespace"] == "guest"
    assert hello["name"] == "hello"
    assert hello["version"] == "0.0.1"
    assert hello["exec"] == {"kind": kind, "code": HELLO, "binary": False}
    assert annotation(hello, "exec") == kind


def test_action_create_with_an_explicit_kind(aio_cli: AioCli) -> None:
    path = source(aio_cli, "kinded.js", HELLO)
    created = aio_cli.json(
        "rt", "action", "create", "kinded", path, "--kind", "nodejs:18", "--json"
    )
    assert created["name"] == "kinded"
    assert created["exec"]["kind"] == "nodejs:18"
    assert annotation(created, "exec") == "nodejs:18"
    result = aio_cli.json("rt", "action", "invoke", "kinded", "-p", "name", "k", "-r")
    assert result == {"greeting": "Hello, k!"}


def test_action_create_of_an_existing_action_is_a_conflict(aio_cli: AioCli, hello: Any) -> None:
    error = aio_cli.fails("rt", "action", "create", "hello", source(aio_cli, "again.js", HELLO))
    assert "failed to create the action" in error
    assert "(409 Conflict)" in error


def test_action_invoke_with_result_prints_the_result(aio_cli: AioCli, hello: Any) -> None:
    result = aio_cli.json("rt", "action", "invoke", "hello", "-p", "name", "x", "-r")
    assert result == {"greeting": "Hello, x!"}


def test_action_invoke_blocking_prints_the_activation(activation: Any) -> None:
    assert ACTIVATION_ID.match(activation["activationId"])
    assert activation["namespace"] == "guest"
    assert activation["name"] == "hello"
    assert activation["response"]["success"] is True
    assert activation["response"]["status"] == "success"
    assert activation["response"]["result"] == {"greeting": "Hello, x!"}
    # As OpenWhisk's: the answer leaves before the logs are read; the record has them.
    assert activation["logs"] == []
    assert annotation(activation, "path") == "guest/hello"


def test_action_invoke_without_flags_prints_the_activation_id(aio_cli: AioCli, hello: Any) -> None:
    invoked = aio_cli.json("rt", "action", "invoke", "hello", "-p", "name", "async")
    assert list(invoked) == ["activationId"]
    assert ACTIVATION_ID.match(invoked["activationId"])
    record = aio_cli.eventually(
        ("rt", "activation", "get", invoked["activationId"]), lambda record: "response" in record
    )
    assert record["response"]["result"] == {"greeting": "Hello, async!"}


def test_action_invoke_of_a_failing_action(aio_cli: AioCli) -> None:
    aio_cli("rt", "action", "create", "failing", source(aio_cli, "failing.js", FAILING))
    # a blocking invoke of an action that fails answers 502 with the activation; the CLI
    # prints its result (-r) or the whole record (-b) and exits 0
    result = aio_cli.json("rt", "action", "invoke", "failing", "-p", "name", "x", "-r")
    assert result == {"error": "no x"}
    record = aio_cli.json("rt", "action", "invoke", "failing", "-p", "name", "y", "-b")
    assert ACTIVATION_ID.match(record["activationId"])
    assert record["response"]["success"] is False
    assert record["response"]["status"] == "application error"
    assert record["response"]["result"] == {"error": "no y"}


def test_action_invoke_of_a_missing_action(aio_cli: AioCli) -> None:
    error = aio_cli.fails("rt", "action", "invoke", "nowhere", "-r")
    assert "failed to invoke the action" in error
    assert "(404 Not Found)" in error


def test_action_list(aio_cli: AioCli, hello: Any) -> None:
    listed = aio_cli.json("rt", "action", "list", "--json")
    entry = next(action for action in listed if action["name"] == "hello")
    assert entry["namespace"] == "guest"
    assert annotation(entry, "exec") == hello["exec"]["kind"]
    assert "code" not in entry["exec"]
    # the table reads the `exec` and `web-export` annotations and strips the namespace
    # from `GET /namespaces`
    table = aio_cli("rt", "action", "list")
    row = next(line.split() for line in table.splitlines() if line.strip().endswith(" hello"))
    assert row[2:] == ["private", hello["exec"]["kind"], "0.0.1", "hello"]


def test_action_get(aio_cli: AioCli, hello: Any) -> None:
    # `action get` prints the name on a line of its own, then the action without its code
    name, _, body = aio_cli("rt", "action", "get", "hello").partition("\n")
    assert name == "hello"
    action = json.loads(body)
    assert action["name"] == "hello"
    assert action["namespace"] == "guest"
    assert action["exec"] == {"kind": hello["exec"]["kind"], "binary": False}
    assert action["limits"] == hello["limits"]
    assert aio_cli("rt", "action", "get", "hello", "--code") == HELLO + "\n"


def test_action_get_url(aio_cli: AioCli, hello: Any, homerun: Homerun) -> None:
    url = aio_cli("rt", "action", "get", "hello", "--url").strip()
    assert url == f"{homerun.apihost}/api/v1/namespaces/guest/actions/hello"


def test_action_get_of_a_missing_action(aio_cli: AioCli) -> None:
    error = aio_cli.fails("rt", "action", "get", "nowhere")
    assert "failed to retrieve the action" in error
    assert "(404 Not Found)" in error


def test_action_delete(aio_cli: AioCli) -> None:
    aio_cli("rt", "action", "create", "doomed", source(aio_cli, "doomed.js", HELLO))
    deleted = aio_cli.json("rt", "action", "delete", "doomed", "--json")
    assert deleted["name"] == "doomed"
    assert deleted["namespace"] == "guest"
    assert "(404 Not Found)" in aio_cli.fails("rt", "action", "get", "doomed")
    assert "(404 Not Found)" in aio_cli.fails("rt", "action", "delete", "doomed")
    assert all(
        action["name"] != "doomed" for action in aio_cli.json("rt", "action", "list", "--json")
    )


# --- activations ---------------------------------------------------------------------------


def test_activation_list(aio_cli: AioCli, activation: Any) -> None:
    activation_id = activation["activationId"]
    listed = aio_cli.eventually(
        ("rt", "activation", "list", "--json"),
        lambda listed: any(entry["activationId"] == activation_id for entry in listed),
    )
    entry = next(entry for entry in listed if entry["activationId"] == activation_id)
    assert entry["name"] == "hello"
    assert entry["namespace"] == "guest"
    assert annotation(entry, "kind") == annotation(activation, "kind")
    # the table reads the `kind`, `path`, `waitTime` and `initTime` annotations
    table = aio_cli("rt", "activation", "list")
    row = next(line.split() for line in table.splitlines() if activation_id in line)
    assert row[2] == "success"
    assert row[-1] == "hello"


def test_activation_list_for_one_action(aio_cli: AioCli, activation: Any) -> None:
    listed = aio_cli.json("rt", "activation", "list", "hello", "--limit", "50", "--json")
    assert listed
    assert {entry["name"] for entry in listed} == {"hello"}


def test_activation_get(aio_cli: AioCli, activation: Any) -> None:
    activation_id = activation["activationId"]
    record = aio_cli.eventually(
        ("rt", "activation", "get", activation_id), lambda record: bool(record.get("logs"))
    )
    assert record["activationId"] == activation_id
    assert record["name"] == "hello"
    assert record["response"] == activation["response"]
    assert len(record["logs"]) == 1
    assert record["logs"][0].endswith("stdout: hello from x")


def test_activation_get_of_a_missing_activation(aio_cli: AioCli) -> None:
    error = aio_cli.fails("rt", "activation", "get", "0" * 32)
    assert "failed to retrieve the activation" in error
    assert "(404 Not Found)" in error


def test_activation_logs(aio_cli: AioCli, activation: Any) -> None:
    # `activation logs` first reads the namespace's log forwarding (`GET
    # /runtime/namespaces/guest/logForwarding`), then `GET .../activations/{id}/logs`
    activation_id = activation["activationId"]
    output = aio_cli("rt", "activation", "logs", activation_id).splitlines()
    assert output[0] == f"=== activation logs {activation_id}"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\S+Z\s+stdout: hello from x", output[1]), output
    assert len(output) == 2
    stripped = aio_cli("rt", "activation", "logs", activation_id, "--strip").splitlines()
    assert stripped == [f"=== activation logs {activation_id}", "hello from x"]


def test_activation_logs_of_an_action(aio_cli: AioCli, activation: Any) -> None:
    # without an id: `GET .../activations?name=hello&limit=50&skip=0&since=0`, then the logs
    # of each, printed oldest first under a `<path>:<activation id>` banner (none if no logs)
    activation_id = activation["activationId"]
    args = ("rt", "activation", "logs", "--action", "hello", "--limit", "50", "--strip")
    output = aio_cli(*args).splitlines()
    banner = output.index(f"guest/hello:{activation_id}")
    assert output[banner + 1] == "hello from x"
    assert all(re.fullmatch(r"guest/hello:[0-9a-f]{32}|hello from \w+", line) for line in output)


# --- namespace -----------------------------------------------------------------------------


def test_namespace_get(aio_cli: AioCli, hello: Any) -> None:
    entities = aio_cli.json("runtime", "namespace", "get", "--json")
    assert set(entities) == {"actions", "packages", "triggers", "rules"}
    assert "hello" in {action["name"] for action in entities["actions"]}
    assert entities["packages"] == entities["triggers"] == entities["rules"] == []
    table = aio_cli("runtime", "namespace", "get")
    assert table.startswith("Entities in namespace:")
    row = next(line.split() for line in table.splitlines() if "/guest/hello " in line)
    assert row == ["/guest/hello", "private", hello["exec"]["kind"]]


def test_namespace_list(aio_cli: AioCli) -> None:
    assert aio_cli.json("runtime", "namespace", "list", "--json") == ["guest"]
