"""Package bindings: to one's own packages and to public packages of other namespaces, their
errors, updates and dangling targets (shared/spec/openwhisk.md §2.6, §3.6)."""

from __future__ import annotations

import pytest

from tests.controller.api.openwhisk_packages.support import (
    EXISTS,
    NOT_FOUND,
    PACKAGE_TO_BINDING,
    TARGET_MISSING,
    TO_BINDING,
    TO_NON_PACKAGE,
    Caller,
    Json,
    as_dict,
    binding_to,
    error,
    forbidden,
    kv,
    ok,
)

UTILS_ACTIONS = ["cat", "date", "echo", "head", "sort", "split"]


async def test_binding_to_own_package(alice: Caller) -> None:
    ok(await alice.put_package("demo", {"parameters": kv(a=1, b=2), "annotations": kv(d="x")}))
    ok(await alice.put_action("demo/hello"))
    ok(await alice.put_action("demo/feed", annotations=kv(feed="/whisk.system/alarms/alarm")))
    body = binding_to(
        "_",
        "demo",
        parameters=kv(b=20, c=30),
        annotations=kv(mine=True, binding="forged"),
    )
    created = ok(await alice.put_package("mine", body))
    expected_binding = {"namespace": alice.name, "name": "demo"}
    assert created["binding"] == expected_binding
    assert created["parameters"] == kv(b=20, c=30)
    assert created["annotations"] == kv(mine=True, binding=expected_binding)
    assert created["version"] == "0.0.1"
    fetched = ok(await alice.get_package("mine"))
    assert (fetched["name"], fetched["binding"]) == ("mine", expected_binding)
    assert fetched["parameters"] == kv(a=1, b=20, c=30)
    assert fetched["annotations"] == created["annotations"]
    assert [a["name"] for a in fetched["actions"]] == ["hello"]
    assert [f["name"] for f in fetched["feeds"]] == ["feed"]


async def test_binding_by_explicit_own_namespace(alice: Caller) -> None:
    ok(await alice.put_package("demo"))
    created = ok(await alice.put_package("mine", binding_to(alice.name, "demo")))
    assert created["binding"] == {"namespace": alice.name, "name": "demo"}


async def test_binding_to_a_public_package_of_another_namespace(alice: Caller, bob: Caller) -> None:
    ok(await alice.put_package("public", {"publish": True, "parameters": kv(host="a", port=1)}))
    ok(await alice.put_action("public/hello"))
    created = ok(
        await bob.put_package("alices", binding_to(alice.name, "public", parameters=kv(port=2)))
    )
    assert created["namespace"] == bob.name
    assert created["binding"] == {"namespace": alice.name, "name": "public"}
    fetched = ok(await bob.get_package("alices"))
    assert fetched["parameters"] == kv(host="a", port=2)
    assert [a["name"] for a in fetched["actions"]] == ["hello"]
    # The binding is bob's: alice cannot see it.
    assert error(await alice.get_package("alices", bob.name), 403) == forbidden(
        f"{bob.name}/alices"
    )


@pytest.mark.parametrize(
    ("target", "reason"),
    [("private", "private"), ("missing", "does not exist"), ("bound", "public binding")],
)
async def test_binding_to_an_unreadable_package_of_another_namespace_is_forbidden(
    alice: Caller, bob: Caller, target: str, reason: str
) -> None:
    ok(await alice.put_package("private"))
    ok(await alice.put_package("public", {"publish": True}))
    ok(await alice.put_package("bound", binding_to("_", "public", publish=True)))
    response = await bob.put_package("mine", binding_to(alice.name, target))
    assert error(response, 403) == forbidden(f"{alice.name}/{target}"), reason
    assert error(await bob.get_package("mine"), 404) == NOT_FOUND


async def test_binding_into_a_namespace_that_does_not_exist_is_forbidden(alice: Caller) -> None:
    response = await alice.put_package("mine", binding_to("nobody", "pkg"))
    assert error(response, 403) == forbidden("nobody/pkg")


@pytest.mark.parametrize(
    ("binding", "status", "message"),
    [
        ({"namespace": "_", "name": "missing"}, 400, TARGET_MISSING),
        ({"namespace": "_", "name": "mine"}, 400, TARGET_MISSING),
        ({"namespace": "_", "name": "bound"}, 400, TO_BINDING),
        ({"namespace": "_", "name": "hello"}, 409, TO_NON_PACKAGE),
        ({"namespace": "_", "name": "bad name!"}, 400, "The name of the entity contains illegal "
         "characters."),
        ({"namespace": "bad ns!", "name": "demo"}, 400, "The namespace contains illegal "
         "characters."),
    ],
)  # fmt: skip
async def test_binding_errors(alice: Caller, binding: Json, status: int, message: str) -> None:
    ok(await alice.put_package("demo"))
    ok(await alice.put_package("bound", binding_to("_", "demo")))
    ok(await alice.put_action("hello"))
    assert error(await alice.put_package("mine", {"binding": binding}), status) == message
    assert error(await alice.get_package("mine"), 404) == NOT_FOUND


async def test_a_package_cannot_become_a_binding(alice: Caller) -> None:
    ok(await alice.put_package("demo"))
    ok(await alice.put_package("other"))
    response = await alice.put_package("demo", binding_to("_", "other"), overwrite="true")
    assert error(response, 409) == PACKAGE_TO_BINDING
    assert ok(await alice.get_package("demo"))["binding"] == {}


async def test_a_binding_can_be_rebound_and_stays_a_binding(alice: Caller) -> None:
    ok(await alice.put_package("one", {"parameters": kv(p="one")}))
    ok(await alice.put_package("two", {"parameters": kv(p="two")}))
    ok(await alice.put_package("mine", binding_to("_", "one")))
    rebound = ok(await alice.put_package("mine", binding_to("_", "two"), overwrite="true"))
    assert rebound["binding"] == {"namespace": alice.name, "name": "two"}
    assert rebound["version"] == "0.0.2"
    assert ok(await alice.get_package("mine"))["parameters"] == kv(p="two")
    # An update without `binding` keeps it, and the server's annotation stays.
    updated = ok(await alice.put_package("mine", {"annotations": kv(x=1)}, overwrite="true"))
    assert updated["binding"] == {"namespace": alice.name, "name": "two"}
    assert as_dict(updated["annotations"]) == {
        "x": 1,
        "binding": {"namespace": alice.name, "name": "two"},
    }
    response = await alice.put_package("mine", binding_to("_", "mine"), overwrite="true")
    assert error(response, 400) == TO_BINDING


async def test_existing_binding_without_overwrite_conflicts(alice: Caller) -> None:
    ok(await alice.put_package("demo"))
    ok(await alice.put_package("mine", binding_to("_", "demo")))
    assert error(await alice.put_package("mine", binding_to("_", "demo")), 409) == EXISTS


async def test_binding_whose_package_is_gone(alice: Caller, bob: Caller) -> None:
    ok(await alice.put_package("demo"))
    ok(await alice.put_package("public", {"publish": True}))
    ok(await alice.put_package("mine", binding_to("_", "demo")))
    ok(await bob.put_package("theirs", binding_to(alice.name, "public")))
    ok(await alice.delete_package("demo"))
    ok(await alice.put_package("public", {"publish": False}, overwrite="true"))
    assert error(await alice.get_package("mine"), 404) == NOT_FOUND
    assert error(await bob.get_package("theirs"), 403) == forbidden(f"{alice.name}/public")
    # Dangling bindings are still listed and can be deleted.
    assert [p["name"] for p in ok(await bob.list_packages())] == ["theirs"]
    ok(await bob.delete_package("theirs"))


async def test_utils_of_whisk_system_is_listable_by_anyone_and_bindable(
    alice: Caller, bob: Caller
) -> None:
    for who in (alice, bob):
        listed = ok(await who.list_packages("whisk.system"))
        assert [(p["name"], p["publish"], p["binding"]) for p in listed] == [("utils", True, False)]
        utils = ok(await who.get_package("utils", "whisk.system"))
        assert sorted(a["name"] for a in utils["actions"]) == UTILS_ACTIONS
    created = ok(await alice.put_package("myutils", binding_to("whisk.system", "utils")))
    assert created["binding"] == {"namespace": "whisk.system", "name": "utils"}
    fetched = ok(await alice.get_package("myutils"))
    assert sorted(a["name"] for a in fetched["actions"]) == UTILS_ACTIONS
    assert fetched["feeds"] == []
    message = error(await alice.put_package("utils", ns="whisk.system"), 403)
    assert message == forbidden("whisk.system/utils")
