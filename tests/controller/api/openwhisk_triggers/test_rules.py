"""`/api/v1/namespaces/{ns}/rules`: create, read, update, delete, list, enable and disable;
the status lives on the trigger (shared/spec/openwhisk.md §2.2, §2.3, §3.3, §3.4)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.controller.api.openwhisk_triggers.conftest import API, Caller, error_of


@pytest.fixture
async def linked(ow: Caller) -> Caller:
    """A namespace with action `hello`, trigger `t` and no rule yet."""
    await ow.action("hello")
    await ow.trigger("t")
    return ow


async def status_of(ow: Caller, rule: str) -> str:
    response = await ow.get("rules", rule)
    assert response.status_code == 200, response.text
    status: str = response.json()["status"]
    return status


async def links_of(ow: Caller, trigger: str) -> Any:
    response = await ow.get("triggers", trigger)
    assert response.status_code == 200, response.text
    return response.json().get("rules")


async def packaged_action(ow: Caller, package: str, name: str, **package_body: Any) -> None:
    response = await ow.put("packages", package, package_body)
    assert response.status_code == 200, response.text
    await ow.action(f"{package}/{name}")


async def test_create_returns_the_active_rule(linked: Caller) -> None:
    ns = linked.namespace

    response = await linked.put(
        "rules", "r", {"trigger": "/_/t", "action": "/_/hello", "name": "ignored"}
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body.pop("updated"), int)
    assert body == {
        "namespace": ns,
        "name": "r",
        "version": "0.0.1",
        "publish": False,
        "annotations": [],
        "status": "active",
        "trigger": {"path": ns, "name": "t"},
        "action": {"path": ns, "name": "hello"},
    }


async def test_create_links_the_rule_on_its_trigger(linked: Caller) -> None:
    ns = linked.namespace
    assert "rules" not in (await linked.get("triggers", "t")).json()

    await linked.rule("r", "/_/t", "/_/hello")

    assert await links_of(linked, "t") == {
        f"{ns}/r": {"action": {"path": ns, "name": "hello"}, "status": "active"}
    }


def _in(namespace: str, ref: Any) -> Any:
    if isinstance(ref, str):
        return ref.format(ns=namespace)
    return {k: v.format(ns=namespace) for k, v in ref.items()}


@pytest.mark.parametrize(
    ("trigger", "action"),
    [
        ({"path": "_", "name": "t"}, {"path": "_", "name": "hello"}),
        ({"path": "{ns}", "name": "t"}, {"path": "{ns}", "name": "hello"}),
        ("/{ns}/t", "/{ns}/hello"),
        ("t", "hello"),
    ],
    ids=["objects", "objects with namespace", "paths", "simple names"],
)
async def test_references_may_be_objects_or_paths(
    linked: Caller, trigger: Any, action: Any
) -> None:
    ns = linked.namespace

    created = await linked.rule("r", _in(ns, trigger), _in(ns, action))

    assert created["trigger"] == {"path": ns, "name": "t"}
    assert created["action"] == {"path": ns, "name": "hello"}


async def test_the_action_may_be_packaged(linked: Caller) -> None:
    ns = linked.namespace
    await packaged_action(linked, "pkg", "hello")

    created = await linked.rule("r", "/_/t", {"path": f"{ns}/pkg", "name": "hello"})
    by_string = await linked.rule("r2", "/_/t", "pkg/hello")

    assert created["action"] == by_string["action"] == {"path": f"{ns}/pkg", "name": "hello"}
    assert (await links_of(linked, "t"))[f"{ns}/r"]["action"] == {
        "path": f"{ns}/pkg",
        "name": "hello",
    }


async def test_the_action_may_be_in_a_public_package_of_another_namespace(
    linked: Caller, caller_of: Callable[[str, str], Awaitable[Caller]]
) -> None:
    other = await caller_of("other", "int2")
    await packaged_action(other, "shared", "hello", publish=True)
    await packaged_action(other, "private", "hello")
    theirs = f"/{other.namespace}"

    allowed = await linked.put("rules", "r", {"trigger": "t", "action": f"{theirs}/shared/hello"})
    private = await linked.put("rules", "r2", {"trigger": "t", "action": f"{theirs}/private/hello"})
    unpackaged = await linked.put("rules", "r3", {"trigger": "t", "action": f"{theirs}/x"})

    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["action"] == {"path": f"{other.namespace}/shared", "name": "hello"}
    assert private.status_code == unpackaged.status_code == 403
    assert error_of(private) == (
        "The supplied authentication is not authorized to access "
        f"'{other.namespace}/private/hello'."
    )


async def test_the_action_may_be_reached_through_a_binding(linked: Caller) -> None:
    ns = linked.namespace
    await packaged_action(linked, "pkg", "hello")
    bound = await linked.put("packages", "bound", {"binding": {"namespace": "_", "name": "pkg"}})
    assert bound.status_code == 200, bound.text

    created = await linked.rule("r", "/_/t", "/_/bound/hello")
    missing = await linked.put("rules", "r2", {"trigger": "t", "action": "/_/bound/nope"})

    assert created["action"] == {"path": f"{ns}/bound", "name": "hello"}
    assert missing.status_code == 400
    assert error_of(missing) == f"action /{ns}/bound/nope does not exist"


@pytest.mark.parametrize(
    "body",
    [{}, {"trigger": "/_/t"}, {"action": "/_/hello"}, {"trigger": None, "action": "/_/hello"}],
)
async def test_create_needs_a_trigger_and_an_action(linked: Caller, body: Any) -> None:
    response = await linked.put("rules", "r", body)

    assert response.status_code == 400
    assert error_of(response) == "rule requires a valid trigger and a valid action"


async def test_create_needs_an_existing_trigger(linked: Caller) -> None:
    response = await linked.put("rules", "r", {"trigger": "/_/nope", "action": "/_/hello"})

    assert response.status_code == 400
    assert error_of(response) == f"trigger /{linked.namespace}/nope does not exist"
    assert (await linked.get("rules", "r")).status_code == 404


@pytest.mark.parametrize("action", ["/_/nope", "/_/pkg/nope", "pkg/nope"])
async def test_create_needs_an_existing_action(linked: Caller, action: str) -> None:
    ns = linked.namespace
    expected = action.replace("/_/", f"/{ns}/") if action.startswith("/") else f"/{ns}/{action}"

    response = await linked.put("rules", "r", {"trigger": "/_/t", "action": action})

    assert response.status_code == 400
    assert error_of(response) == f"action {expected} does not exist"
    assert await links_of(linked, "t") is None


async def test_a_missing_trigger_is_reported_before_a_missing_action(linked: Caller) -> None:
    response = await linked.put("rules", "r", {"trigger": "/_/nope", "action": "/_/nope"})

    assert error_of(response) == f"trigger /{linked.namespace}/nope does not exist"


@pytest.mark.parametrize(
    "body",
    [
        {"trigger": "/_/t/x/y", "action": "/_/hello"},
        {"trigger": "/_/t", "action": "/bad name!/hello"},
        {"trigger": {"path": "_"}, "action": "/_/hello"},
        {"trigger": 42, "action": "/_/hello"},
    ],
)
async def test_malformed_references_are_400(linked: Caller, body: Any) -> None:
    response = await linked.put("rules", "r", body)

    assert response.status_code == 400, response.text


async def test_a_trigger_of_another_namespace_is_403(
    linked: Caller, caller_of: Callable[[str, str], Awaitable[Caller]]
) -> None:
    other = await caller_of("other", "int2")
    await other.trigger("theirs")

    response = await linked.put(
        "rules", "r", {"trigger": f"/{other.namespace}/theirs", "action": "/_/hello"}
    )

    assert response.status_code == 403
    assert error_of(response) == (
        f"The supplied authentication is not authorized to access '{other.namespace}/theirs'."
    )


async def test_put_of_an_existing_rule_without_overwrite_is_409(linked: Caller) -> None:
    await linked.rule("r", "/_/t", "/_/hello")

    response = await linked.put("rules", "r", {"trigger": "/_/t", "action": "/_/hello"})

    assert response.status_code == 409
    assert error_of(response) == "resource already exists"


async def test_overwrite_keeps_the_status_and_bumps_the_version(linked: Caller) -> None:
    await linked.action("other")
    await linked.rule("r", "/_/t", "/_/hello")
    assert (await linked.post("rules", "r", {"status": "inactive"})).status_code == 200

    response = await linked.put(
        "rules", "r", {"action": "/_/other", "annotations": [{"key": "a", "value": 1}]},
        overwrite="true",
    )  # fmt: skip

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "inactive"
    assert body["version"] == "0.0.2"
    assert body["annotations"] == [{"key": "a", "value": 1}]
    assert body["action"]["name"] == "other"
    assert body["trigger"]["name"] == "t"
    link = (await links_of(linked, "t"))[f"{linked.namespace}/r"]
    assert link == {"action": {"path": linked.namespace, "name": "other"}, "status": "inactive"}


async def test_overwrite_with_another_trigger_moves_the_link(linked: Caller) -> None:
    ns = linked.namespace
    await linked.trigger("t2")
    await linked.rule("r", "/_/t", "/_/hello")

    response = await linked.put("rules", "r", {"trigger": "/_/t2"}, overwrite="true")

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "active"
    assert response.json()["trigger"] == {"path": ns, "name": "t2"}
    assert await links_of(linked, "t") == {}
    assert (await links_of(linked, "t2"))[f"{ns}/r"]["status"] == "active"


async def test_overwrite_checks_the_new_references(linked: Caller) -> None:
    await linked.rule("r", "/_/t", "/_/hello")

    response = await linked.put("rules", "r", {"action": "/_/nope"}, overwrite="true")

    assert response.status_code == 400
    assert error_of(response) == f"action /{linked.namespace}/nope does not exist"
    assert (await linked.get("rules", "r")).json()["action"]["name"] == "hello"


async def test_get_of_a_missing_rule_is_404(ow: Caller) -> None:
    response = await ow.get("rules", "nope")

    assert response.status_code == 404
    assert error_of(response) == "The requested resource does not exist."


async def test_list_has_no_status_and_counts(linked: Caller) -> None:
    ns = linked.namespace
    await linked.rule("r1", "/_/t", "/_/hello")
    await linked.rule("r2", "/_/t", "/_/hello")

    listed = await linked.get("rules")
    count = await linked.get("rules", count="true")
    page = await linked.get("rules", limit=1, skip=1)
    bad = await linked.get("rules", skip=-1)

    assert listed.status_code == 200
    items = listed.json()
    assert [r["name"] for r in items] == ["r2", "r1"]
    assert "status" not in items[0]
    assert items[0]["trigger"] == {"path": ns, "name": "t"}
    assert items[0]["action"] == {"path": ns, "name": "hello"}
    assert count.json() == {"rules": 2}
    assert [r["name"] for r in page.json()] == ["r1"]
    assert bad.status_code == 400
    assert error_of(bad).endswith("The value '-1' is not greater than or equal to 0 for rules.")


async def test_disable_and_enable(linked: Caller) -> None:
    ns = linked.namespace
    await linked.rule("r", "/_/t", "/_/hello")

    disabled = await linked.post("rules", "r", {"status": "inactive"})
    status_after_disable = await status_of(linked, "r")
    link_after_disable = (await links_of(linked, "t"))[f"{ns}/r"]["status"]
    disabled_again = await linked.post("rules", "r", {"status": "inactive"})
    enabled = await linked.post("rules", "r", {"status": "active"})

    assert disabled.status_code == disabled_again.status_code == enabled.status_code == 200
    assert disabled.text == "OK"
    assert status_after_disable == link_after_disable == "inactive"
    assert await status_of(linked, "r") == "active"
    assert (await links_of(linked, "t"))[f"{ns}/r"]["status"] == "active"


@pytest.mark.parametrize("status", ["paused", "ACTIVE", 1])
async def test_an_unknown_status_is_400(linked: Caller, status: Any) -> None:
    await linked.rule("r", "/_/t", "/_/hello")

    response = await linked.post("rules", "r", {"status": status})

    assert response.status_code == 400
    assert error_of(response) == (
        f"'{status}' is not a recognized rule state, must be one of ['active', 'inactive']"
    )


async def test_a_status_change_without_status_is_400(linked: Caller) -> None:
    await linked.rule("r", "/_/t", "/_/hello")

    response = await linked.post("rules", "r", {})

    assert response.status_code == 400
    assert "status" in error_of(response)


async def test_a_status_change_of_a_missing_rule_is_404(ow: Caller) -> None:
    response = await ow.post("rules", "nope", {"status": "active"})

    assert response.status_code == 404


async def test_a_rule_whose_trigger_is_gone_is_inactive_and_cannot_be_enabled(
    linked: Caller,
) -> None:
    await linked.rule("r", "/_/t", "/_/hello")
    assert (await linked.delete("triggers", "t")).status_code == 200

    status = await status_of(linked, "r")
    enable = await linked.post("rules", "r", {"status": "active"})
    disable = await linked.post("rules", "r", {"status": "inactive"})

    assert status == "inactive"
    assert enable.status_code == 404
    assert error_of(enable) == "Only rules with existing triggers can be activated"
    assert disable.status_code == 200  # already inactive: nothing to change, as in OpenWhisk


async def test_a_recreated_trigger_has_no_links_until_the_rule_is_enabled(linked: Caller) -> None:
    ns = linked.namespace
    await linked.rule("r", "/_/t", "/_/hello")
    await linked.delete("triggers", "t")
    await linked.trigger("t")

    before = await status_of(linked, "r")
    links_before = await links_of(linked, "t")
    enable = await linked.post("rules", "r", {"status": "active"})

    assert before == "inactive"
    assert links_before is None
    assert enable.status_code == 200
    assert await status_of(linked, "r") == "active"
    assert (await links_of(linked, "t"))[f"{ns}/r"]["status"] == "active"


async def test_delete_returns_the_inactive_rule_and_unlinks_it(linked: Caller) -> None:
    created = await linked.rule("r", "/_/t", "/_/hello")

    deleted = await linked.delete("rules", "r")

    assert deleted.status_code == 200
    assert deleted.json() == created | {"status": "inactive"}
    assert await links_of(linked, "t") == {}
    assert (await linked.get("rules", "r")).status_code == 404
    assert (await linked.delete("rules", "r")).status_code == 404


async def test_delete_of_a_rule_whose_trigger_is_gone(linked: Caller) -> None:
    await linked.rule("r", "/_/t", "/_/hello")
    await linked.delete("triggers", "t")

    deleted = await linked.delete("rules", "r")

    assert deleted.status_code == 200
    assert deleted.json()["status"] == "inactive"


async def test_names_with_a_slash_are_400(ow: Caller) -> None:
    for method in ("GET", "PUT", "DELETE", "POST"):
        response = await ow.client.request(
            method, ow.url("rules", "pkg/r"), headers=ow.headers, json={"status": "active"}
        )

        assert response.status_code == 400, method
        assert error_of(response) == "The name of the entity contains illegal characters."


async def test_another_namespace_is_403(
    ow: Caller, caller_of: Callable[[str, str], Awaitable[Caller]]
) -> None:
    other = await caller_of("other", "int2")
    url = ow.url("rules", "theirs", other.namespace)

    for method in ("GET", "PUT", "DELETE", "POST"):
        response = await ow.client.request(
            method, url, headers=ow.headers, json={"status": "active"}
        )

        assert response.status_code == 403, method
    listing = await ow.client.get(f"{API}/{other.namespace}/rules", headers=ow.headers)
    assert listing.status_code == 403
