"""One permission policy seen through every way into an action, end to end on the engine
(process sandbox): OpenWhisk invoke and get, seed execute, web actions, rule targets of a fired
trigger, and sequence components (shared/spec/openwhisk.md §2.6, §7, §8.1, §10.1).

`acme-int1` (alice, the engine's namespace, also reachable through the seed API) and
`globex-int1` (bob) own:

    acme-int1    hello*, secret, tools/hammer* (tools: host=tools),
                 bobs -> globex-int1/public (port=2)
    globex-int1  plain* (published, but outside any package), public/echo* (public, published:
                 host=bob port=1), private/hidden*, bobbind -> public

(* web-exported). Each action answers with the action that ran, the namespace it ran as, and the
`host` and `port` it was given."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from controller.services.activations import Activation
from tests.conftest import Engine
from tests.controller.api.openwhisk_packages.support import (
    NOT_FOUND,
    Caller,
    binding_to,
    error,
    forbidden,
    kv,
    ok,
)

ALICE, BOB = "acme-int1", "globex-int1"
CODE = """function main(p) {
  return {action: process.env.__OW_ACTION_NAME, ns: process.env.__OW_NAMESPACE,
          host: p.host, port: p.port};
}"""
WEB_EXPORT = kv(**{"web-export": True})
COMPONENT_MISSING = "Sequence component does not exist."


@pytest.fixture
def sandbox_kind() -> str:
    return "process"


def ran(action: str, namespace: str, **params: Any) -> dict[str, Any]:
    """The result of CODE: `action` ran as `namespace` with these `host`/`port` parameters."""
    return {"action": f"/{action}", "ns": namespace, **params}


@dataclass
class World:
    engine: Engine
    alice: Caller
    bob: Caller

    def of(self, who: str) -> Caller:
        return self.alice if who == "alice" else self.bob

    async def unpublish(self) -> None:
        ok(await self.bob.put_package("public", {"publish": False}, overwrite="true"))


async def _namespace(engine: Engine, method: str, org: str) -> Caller:
    response = await engine.client.request(
        method, f"/runtime/admin/namespaces/{org}/int1", headers=engine.headers
    )
    return Caller(engine.client, ok(response))


@pytest.fixture
async def world(engine: Engine) -> World:
    alice = await _namespace(engine, "GET", "acme")
    bob = await _namespace(engine, "POST", "globex")
    ok(await alice.put_package("tools", {"parameters": kv(host="tools")}))
    for name, web in (("hello", True), ("secret", False), ("tools/hammer", True)):
        ok(await alice.put_action(name, CODE, annotations=WEB_EXPORT if web else []))
    ok(await bob.put_package("public", {"publish": True, "parameters": kv(host="bob", port=1)}))
    ok(await bob.put_package("private"))
    for name in ("plain", "public/echo", "private/hidden"):
        ok(await bob.put_action(name, CODE, annotations=WEB_EXPORT, publish=True))
    ok(await bob.put_package("bobbind", binding_to("_", "public", publish=True)))
    ok(await alice.put_package("bobs", binding_to(BOB, "public", parameters=kv(port=2))))
    return World(engine, alice, bob)


def expect(response: httpx.Response, status: int, expected: Any, case: str) -> None:
    """A result (200) or an OpenWhisk error of `status` whose message is `expected`."""
    assert response.status_code == status, f"{case}: {response.status_code} {response.text}"
    if status == 200:
        assert response.json() == expected, case
    else:
        assert error(response, status) == expected, case


async def invoke(caller: Caller, namespace: str, name: str) -> httpx.Response:
    path = f"{namespace}/actions/{name}"
    return await caller.request("POST", path, {}, blocking="true", result="true")


async def recorded(engine: Engine, activation_id: str) -> Activation:
    found = await engine.activation(activation_id)
    assert isinstance(found, Activation), f"activation {activation_id} was not recorded"
    return found


# The OpenWhisk API: the caller is the namespace of the Basic credentials.

INVOKE = [
    ("alice", "_", "hello", 200, ran(f"{ALICE}/hello", ALICE)),
    ("alice", "_", "tools/hammer", 200, ran(f"{ALICE}/tools/hammer", ALICE, host="tools")),
    ("alice", BOB, "public/echo", 200, ran(f"{BOB}/public/echo", ALICE, host="bob", port=1)),
    ("alice", "_", "bobs/echo", 200, ran(f"{BOB}/public/echo", ALICE, host="bob", port=2)),
    ("bob", "_", "private/hidden", 200, ran(f"{BOB}/private/hidden", BOB)),
    ("alice", BOB, "private/hidden", 403, forbidden(f"{BOB}/private/hidden")),
    ("alice", BOB, "plain", 403, forbidden(f"{BOB}/plain")),
    ("alice", BOB, "bobbind/echo", 403, forbidden(f"{BOB}/bobbind/echo")),
    ("bob", ALICE, "bobs/echo", 403, forbidden(f"{ALICE}/bobs/echo")),
    ("alice", BOB, "nope", 403, forbidden(f"{BOB}/nope")),
    ("alice", "nobody", "pkg/nope", 403, forbidden("nobody/pkg/nope")),
    ("alice", "_", "nope", 404, NOT_FOUND),
    ("alice", "_", "tools/nope", 404, NOT_FOUND),
]


async def test_openwhisk_invoke_and_get(world: World) -> None:
    for who, namespace, name, status, expected in INVOKE:
        case = f"{who} invokes {namespace}/{name}"
        expect(await invoke(world.of(who), namespace, name), status, expected, case)
    alice = world.alice
    shared = ok(await alice.request("GET", f"{BOB}/actions/public/echo"))
    assert (shared["namespace"], shared["name"]) == (f"{BOB}/public", "echo")
    bound = ok(await alice.request("GET", "_/actions/bobs/echo"))
    assert (bound["namespace"], bound["name"]) == (f"{BOB}/public", "echo")
    denied = await alice.request("GET", f"{BOB}/actions/private/hidden")
    assert error(denied, 403) == forbidden(f"{BOB}/private/hidden")

    await world.unpublish()

    for namespace, name, path in ((BOB, "public/echo", f"{BOB}/public/echo"),
                                  ("_", "bobs/echo", f"{BOB}/public")):  # fmt: skip
        expect(await invoke(alice, namespace, name), 403, forbidden(path), f"unpublished {name}")
        got = await alice.request("GET", f"{namespace}/actions/{name}")
        expect(got, 403, forbidden(path), f"get unpublished {name}")
    mine = await invoke(world.bob, "_", "public/echo")
    expect(mine, 200, ran(f"{BOB}/public/echo", BOB, host="bob", port=1), "the owner's own")


# The seed API: the caller is the organization's namespace, which names only its own actions
# (bindings included).


async def execute(engine: Engine, name: str) -> httpx.Response:
    return await engine.client.post(
        f"{engine.base}/actions/{name}", json={}, headers=engine.headers, timeout=60
    )


async def test_seed_execute(world: World) -> None:
    engine = world.engine
    for name, expected in (
        ("hello", ran(f"{ALICE}/hello", ALICE)),
        ("secret", ran(f"{ALICE}/secret", ALICE)),
        ("tools/hammer", ran(f"{ALICE}/tools/hammer", ALICE, host="tools")),
        ("bobs/echo", ran(f"{BOB}/public/echo", ALICE, host="bob", port=2)),
    ):
        response = await execute(engine, name)
        assert response.status_code == 200, f"{name}: {response.text}"
        body = response.json()
        assert body["namespace"] == ALICE, name
        assert body["response"]["result"] == expected, name
    for name in ("nope", "tools/nope"):
        missing = f"The action '{name}' does not exist in namespace '{ALICE}'."
        assert error(await execute(engine, name), 404) == missing

    await world.unpublish()

    assert error(await execute(engine, "bobs/echo"), 403) == forbidden(f"{BOB}/public")


# Web actions: the caller is the URL's namespace; every denial is a 404.

WEB = [
    (f"{ALICE}/default/hello", ran(f"{ALICE}/hello", ALICE)),
    (f"{ALICE}/tools/hammer", ran(f"{ALICE}/tools/hammer", ALICE, host="tools")),
    (f"{ALICE}/bobs/echo", ran(f"{BOB}/public/echo", ALICE, host="bob", port=2)),
    (f"{BOB}/private/hidden", ran(f"{BOB}/private/hidden", BOB)),  # exported: anyone may call
    (f"{ALICE}/default/secret", None),  # not exported
    (f"{ALICE}/default/nope", None),
    (f"{ALICE}/public/echo", None),  # bob's package, not alice's
    (f"{ALICE}/bobbind/echo", None),  # bob's binding, not alice's
    ("nobody/default/hello", None),
]


async def web(engine: Engine, path: str) -> httpx.Response:
    return await engine.client.get(f"/api/v1/web/{path}.json", timeout=60)


async def test_web_actions(world: World) -> None:
    engine = world.engine
    for path, expected in WEB:
        response = await web(engine, path)
        if expected is None:
            expect(response, 404, NOT_FOUND, path)
        else:
            expect(response, 200, expected, path)
    bound = await web(engine, f"{ALICE}/bobs/echo")
    activation = await recorded(engine, bound.headers["x-openwhisk-activation-id"])
    assert activation.namespace == ALICE
    assert {"key": "binding", "value": f"{ALICE}/bobs"} in activation.annotations

    await world.unpublish()

    expect(await web(engine, f"{ALICE}/bobs/echo"), 404, NOT_FOUND, "bound, unpublished")
    owner = ran(f"{BOB}/public/echo", BOB, host="bob", port=1)
    expect(await web(engine, f"{BOB}/public/echo"), 200, owner, "the owner's own")


# Rule targets: the caller is the trigger's namespace; a denied target is a log line.

RULES = {"own": "/_/hello", "packaged": "/_/tools/hammer", "shared": f"/{BOB}/public/echo",
         "bound": "/_/bobs/echo"}  # fmt: skip


async def fire(world: World) -> dict[str, dict[str, Any]]:
    """Fire alice's trigger; its activation's log line of each rule, by rule name."""
    response = await world.alice.request("POST", "_/triggers/t", {})
    assert response.status_code == 202, response.text
    trigger = await recorded(world.engine, response.json()["activationId"])
    lines = [json.loads(line) for line in trigger.logs]
    return {line["rule"].removeprefix(f"{ALICE}/"): line for line in lines}


async def test_rule_targets(world: World) -> None:
    alice, engine = world.alice, world.engine
    ok(await alice.request("PUT", "_/triggers/t", {}))
    for rule, action in RULES.items():
        ok(await alice.request("PUT", f"_/rules/{rule}", {"trigger": "/_/t", "action": action}))
    refused = await alice.request(
        "PUT", "_/rules/private", {"trigger": "/_/t", "action": f"/{BOB}/private/hidden"}
    )
    assert error(refused, 403) == forbidden(f"{BOB}/private/hidden")

    lines = await fire(world)
    assert set(lines) == set(RULES)
    for rule, expected in (
        ("own", ran(f"{ALICE}/hello", ALICE)),
        ("packaged", ran(f"{ALICE}/tools/hammer", ALICE, host="tools")),
        ("shared", ran(f"{BOB}/public/echo", ALICE, host="bob", port=1)),
        ("bound", ran(f"{BOB}/public/echo", ALICE, host="bob", port=2)),
    ):
        line = lines[rule]
        assert line["success"] is True and line["statusCode"] == 0, line
        assert line["action"] == RULES[rule].replace("/_/", f"{ALICE}/").lstrip("/")
        run = await recorded(engine, line["activationId"])
        assert run.namespace == ALICE, rule
        assert run.response["result"] == expected, rule

    await world.unpublish()
    ok(await alice.request("DELETE", "_/actions/tools/hammer"))

    lines = await fire(world)
    assert lines["own"]["success"] is True
    for rule, message in (
        ("packaged", NOT_FOUND),
        ("shared", forbidden(f"{BOB}/public/echo")),
        ("bound", forbidden(f"{BOB}/public")),
    ):
        line = lines[rule]
        assert (line["success"], line["statusCode"], line["error"]) == (False, 1, message), rule
        assert "activationId" not in line


# Sequence components: the caller is the namespace invoking the sequence, checked as each
# component runs.


async def sequence(caller: Caller, name: str, *components: str) -> None:
    body = {"exec": {"kind": "sequence", "components": list(components)}}
    ok(await caller.request("PUT", f"_/actions/{name}", body))


async def run_sequence(
    world: World, caller: Caller, path: str, status: int, result: Any, components: int
) -> None:
    """Invoke the sequence `path`; check its result and how many components ran."""
    response = await invoke(caller, *path.split("/", 1))
    assert response.status_code == status, f"{caller.name} runs {path}: {response.text}"
    assert response.json() == result, f"{caller.name} runs {path}"
    record = await recorded(world.engine, response.headers["x-openwhisk-activation-id"])
    assert record.namespace == caller.name
    assert len(record.logs) == components, record.logs


async def test_a_shared_sequence_does_not_lend_its_owners_rights(world: World) -> None:
    """bob's public sequence ends in bob's private action: bob may run it, alice may not."""
    await sequence(world.bob, "public/seq", f"/{BOB}/public/echo", f"/{BOB}/plain")
    done = ran(f"{BOB}/plain", BOB, host="bob", port=1)
    await run_sequence(world, world.bob, f"{BOB}/public/seq", 200, done, components=2)
    denied = {"error": forbidden(f"{BOB}/plain")}
    await run_sequence(world, world.alice, f"{BOB}/public/seq", 502, denied, components=1)
    await run_sequence(world, world.alice, "_/bobs/seq", 502, denied, components=1)


async def test_a_sequence_using_a_shared_package_stops_when_it_is_unpublished(
    world: World,
) -> None:
    alice = world.alice
    await sequence(alice, "direct", f"/{BOB}/public/echo", "/_/hello")
    await sequence(alice, "gone", "/_/hello", "/_/tools/hammer")
    direct = ran(f"{ALICE}/hello", ALICE, host="bob", port=1)
    await run_sequence(world, alice, "_/direct", 200, direct, components=2)
    ok(await alice.request("DELETE", "_/actions/tools/hammer"))
    missing = {"error": COMPONENT_MISSING}
    await run_sequence(world, alice, "_/gone", 502, missing, components=1)

    await world.unpublish()

    denied = {"error": forbidden(f"{BOB}/public/echo")}
    await run_sequence(world, alice, "_/direct", 502, denied, components=0)


async def test_a_sequence_through_a_binding_stops_when_its_package_is_unpublished(
    world: World,
) -> None:
    alice = world.alice
    await sequence(alice, "bound", "/_/hello", "/_/bobs/echo")
    bound = ran(f"{BOB}/public/echo", ALICE, host="bob", port=2)
    await run_sequence(world, alice, "_/bound", 200, bound, components=2)

    await world.unpublish()

    denied = {"error": forbidden(f"{BOB}/public")}
    await run_sequence(world, alice, "_/bound", 502, denied, components=1)
