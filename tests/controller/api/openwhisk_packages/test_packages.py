"""`/api/v1/namespaces/{ns}/packages[/{name}]`: create, read, update, list, visibility across
namespaces, deletion (shared/spec/openwhisk.md §2.2, §2.3, §2.6, §3.6)."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from controller.db.models import CodeBlobRow
from controller.settings import Settings
from controller.setup import in_transaction
from tests.controller.api.openwhisk_packages.support import (
    EXISTS,
    NOT_FOUND,
    NOT_IN_COLLECTION,
    Caller,
    Json,
    as_dict,
    binding_to,
    error,
    forbidden,
    kv,
    ok,
)

# Create, read, update.


async def test_create_returns_the_stored_package(alice: Caller) -> None:
    created = ok(await alice.put_package("demo"))
    assert created == {
        "namespace": alice.name,
        "name": "demo",
        "version": "0.0.1",
        "publish": False,
        "binding": {},
        "parameters": [],
        "annotations": [],
        "updated": created["updated"],
    }
    assert isinstance(created["updated"], int) and created["updated"] > 0
    fetched = ok(await alice.get_package("demo"))
    assert fetched == {**created, "actions": [], "feeds": []}
    assert ok(await alice.get_package("demo")) == ok(
        await alice.request("GET", f"{alice.name}/packages/demo")
    )


async def test_create_with_fields_ignores_namespace_name_and_unknown_fields(
    alice: Caller,
) -> None:
    body = {
        "namespace": "elsewhere",
        "name": "other",
        "publish": True,
        "version": "1.2.3",
        "parameters": kv(a=1, b={"x": [1, None]}),
        "annotations": kv(description="Demo"),
        "unknown": 7,
    }
    created = ok(await alice.put_package("demo", body))
    assert (created["namespace"], created["name"]) == (alice.name, "demo")
    assert (created["publish"], created["version"]) == (True, "1.2.3")
    assert as_dict(created["parameters"]) == {"a": 1, "b": {"x": [1, None]}}
    assert created["annotations"] == kv(description="Demo")


async def test_init_parameters_round_trip(alice: Caller) -> None:
    params = [{"key": "secret", "value": "s", "init": True}, {"key": "plain", "value": 1}]
    assert ok(await alice.put_package("demo", {"parameters": params}))["parameters"] == params


async def test_put_existing_without_overwrite_conflicts(alice: Caller) -> None:
    ok(await alice.put_package("demo"))
    assert error(await alice.put_package("demo", {"publish": True}), 409) == EXISTS
    assert error(await alice.put_package("demo", overwrite="false"), 409) == EXISTS
    assert ok(await alice.get_package("demo"))["publish"] is False


async def test_overwrite_replaces_supplied_fields_and_bumps_the_version(alice: Caller) -> None:
    body = {"parameters": kv(a=1, b=2), "annotations": kv(x=1, y=2), "publish": True}
    first = ok(await alice.put_package("demo", body))
    second = ok(await alice.put_package("demo", {"parameters": kv(c=3)}, overwrite="true"))
    assert second["version"] == "0.0.2"
    assert second["parameters"] == kv(c=3)
    assert second["annotations"] == kv(x=1, y=2)  # absent: kept
    assert second["publish"] is True
    assert second["updated"] >= first["updated"]
    third = ok(
        await alice.put_package("demo", {"annotations": kv(z=3), "publish": False}, overwrite="1")
    )
    assert (third["version"], third["annotations"], third["publish"]) == ("0.0.3", kv(z=3), False)
    assert third["parameters"] == kv(c=3)
    fourth = ok(await alice.put_package("demo", {"version": "2.0.0"}, overwrite="yes"))
    assert fourth["version"] == "2.0.0"
    assert ok(await alice.put_package("demo", overwrite="on"))["version"] == "2.0.1"
    assert ok(await alice.get_package("demo"))["version"] == "2.0.1"


async def test_overwrite_creates_when_missing(alice: Caller) -> None:
    assert ok(await alice.put_package("demo", overwrite="true"))["version"] == "0.0.1"


@pytest.mark.parametrize(
    ("name", "status", "message"),
    [
        ("default", 400, "Package name 'default' is reserved."),
        ("-bad", 400, "The name of the entity contains illegal characters."),
        ("x" * 257, 400, "Name segement longer than allowed: 257 > 256."),
    ],
)
async def test_bad_package_names(alice: Caller, name: str, status: int, message: str) -> None:
    assert error(await alice.put_package(name), status) == message


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"publish": "yes"}, "publish"),
        ({"parameters": {"a": 1}}, "parameters"),
        ({"annotations": [{"value": 1}]}, "annotations.0.key"),
        ({"version": "1.0"}, "version '1.0'"),
        ({"binding": {"namespace": "_"}}, "binding.name"),
        ({"binding": "utils"}, "binding"),
    ],
)
async def test_malformed_bodies(alice: Caller, body: Json, fragment: str) -> None:
    assert fragment in error(await alice.put_package("demo", body), 400)
    assert error(await alice.get_package("demo"), 404) == NOT_FOUND


async def test_non_object_body_and_bad_overwrite_flag(alice: Caller) -> None:
    assert "malformed" in error(await alice.put_package("demo", [1]), 400)
    message = error(await alice.put_package("demo", overwrite="maybe"), 400)
    assert message.startswith("The query parameter 'overwrite' was malformed")


async def test_oversized_parameters_are_refused(alice: Caller) -> None:
    big = "x" * (1024 * 1024)
    message = error(await alice.put_package("demo", {"parameters": kv(p=big)}), 413)
    assert message.startswith("parameters larger than allowed:")
    message = error(await alice.put_package("demo", {"annotations": kv(p=big)}), 413)
    assert message.startswith("annotations larger than allowed:")


async def test_client_binding_annotation_is_discarded(alice: Caller) -> None:
    body = {"annotations": [*kv(binding={"namespace": "x", "name": "y"}), *kv(keep=1)]}
    assert ok(await alice.put_package("demo", body))["annotations"] == kv(keep=1)


async def test_empty_binding_object_means_a_package(alice: Caller) -> None:
    created = ok(await alice.put_package("demo", {"binding": {}, "parameters": kv(a=1)}))
    assert created["binding"] == {}
    fetched = ok(await alice.get_package("demo"))
    # What GET returns can be PUT back as it is.
    again = ok(await alice.put_package("demo", fetched, overwrite="true"))
    assert (again["binding"], again["parameters"]) == ({}, kv(a=1))
    assert again["version"] == "0.0.1"  # the version it carries is honoured


async def test_get_lists_actions_and_feeds(alice: Caller) -> None:
    ok(await alice.put_package("demo"))
    ok(await alice.put_action("demo/b", annotations=kv(description="B")))
    ok(await alice.put_action("demo/a"))
    ok(await alice.put_action("demo/changes", annotations=kv(feed=True)))
    ok(await alice.put_action("outside"))
    fetched = ok(await alice.get_package("demo"))
    assert [a["name"] for a in fetched["actions"]] == ["a", "b"]
    assert [f["name"] for f in fetched["feeds"]] == ["changes"]
    entry = fetched["actions"][1]
    assert set(entry) == {"name", "version", "annotations"}
    assert entry["version"] == "0.0.1"
    assert as_dict(entry["annotations"])["description"] == "B"
    assert as_dict(fetched["feeds"][0]["annotations"])["feed"] is True


async def test_get_missing_package_is_not_found(alice: Caller) -> None:
    assert error(await alice.get_package("nothing"), 404) == NOT_FOUND
    assert error(await alice.get_package("bad name!"), 400).endswith("illegal characters.")


async def test_an_action_name_is_not_a_package(alice: Caller) -> None:
    ok(await alice.put_action("hello"))
    assert error(await alice.get_package("hello"), 409) == NOT_IN_COLLECTION
    assert error(await alice.put_package("hello"), 409) == NOT_IN_COLLECTION
    assert error(await alice.delete_package("hello"), 409) == NOT_IN_COLLECTION


async def test_post_on_a_package_is_not_allowed(alice: Caller) -> None:
    ok(await alice.put_package("demo"))
    response = await alice.request("POST", "_/packages/demo", {})
    error(response, 405)
    assert response.headers["access-control-allow-origin"] == "*"


async def test_packages_require_authentication(client: httpx.AsyncClient, alice: Caller) -> None:
    response = await client.get("/api/v1/namespaces/_/packages")
    assert "requires authentication" in error(response, 401)
    bad = {"Authorization": "Basic dXNlcjpwYXNz"}
    response = await client.put("/api/v1/namespaces/_/packages/demo", json={}, headers=bad)
    assert error(response, 401) == "The supplied authentication is invalid"


async def test_seed_api_packages_are_packages(
    client: httpx.AsyncClient, alice: Caller, admin_headers: dict[str, str]
) -> None:
    body = {"name": "tools/hello", "code": "function main() {}", "exec": {"kind": "nodejs:18"}}
    response = await client.post(
        "/runtime/namespaces/alice/int1/actions", json=body, headers=admin_headers
    )
    assert response.status_code == 200, response.text
    fetched = ok(await alice.get_package("tools"))
    assert (fetched["version"], fetched["publish"], fetched["binding"]) == ("0.0.1", False, {})
    assert [a["name"] for a in fetched["actions"]] == ["hello"]
    assert [p["name"] for p in ok(await alice.list_packages())] == ["tools"]
    ok(await alice.put_package("tools", {"publish": True}, overwrite="true"))
    assert ok(await alice.get_package("tools"))["actions"][0]["name"] == "hello"


# Listing.


async def test_list_own_packages_newest_first_with_bindings(alice: Caller) -> None:
    ok(await alice.put_package("first", {"annotations": kv(n=1)}))
    ok(await alice.put_package("second", {"publish": True}))
    ok(await alice.put_package("bound", binding_to("_", "first")))
    listed = ok(await alice.list_packages())
    assert [p["name"] for p in listed] == ["bound", "second", "first"]
    assert listed[2] == {
        "namespace": alice.name,
        "name": "first",
        "version": "0.0.1",
        "publish": False,
        "annotations": kv(n=1),
        "binding": False,
        "updated": listed[2]["updated"],
    }
    assert listed[0]["binding"] == {"namespace": alice.name, "name": "first"}
    assert ok(await alice.list_packages(count="true")) == {"packages": 3}
    assert ok(await alice.list_packages(alice.name)) == listed
    ok(await alice.put_package("first", overwrite="true"))
    assert next(p["name"] for p in ok(await alice.list_packages())) == "first"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"limit": "2"}, ["p4", "p3"]),
        ({"skip": "3"}, ["p1", "p0"]),
        ({"skip": "1", "limit": "2"}, ["p3", "p2"]),
        ({"limit": "0"}, ["p4", "p3", "p2", "p1", "p0"]),
        ({"skip": "9"}, []),
    ],
)
async def test_list_paging(alice: Caller, query: dict[str, str], expected: list[str]) -> None:
    for i in range(5):
        ok(await alice.put_package(f"p{i}"))
    assert [p["name"] for p in ok(await alice.list_packages(**query))] == expected


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ({"limit": "201"}, "The value '201' is not in the range of 0 to 200 for packages."),
        ({"skip": "-1"}, "The value '-1' is not greater than or equal to 0 for packages."),
        ({"limit": "x"}, "The value 'x' is not an integer for packages."),
    ],
)
async def test_list_paging_errors(alice: Caller, query: dict[str, str], detail: str) -> None:
    name = next(iter(query))
    message = error(await alice.list_packages(**query), 400)
    assert message == f"The query parameter '{name}' was malformed:\n{detail}"


# Another namespace's packages.


async def test_other_namespace_lists_only_public_non_binding_packages(
    alice: Caller, bob: Caller
) -> None:
    ok(await alice.put_package("private"))
    ok(await alice.put_package("public", {"publish": True}))
    ok(await alice.put_package("shared-binding", binding_to("_", "public", publish=True)))
    listed = ok(await bob.list_packages(alice.name))
    assert [(p["name"], p["publish"], p["binding"]) for p in listed] == [("public", True, False)]
    assert ok(await bob.list_packages(alice.name, count="true")) == {"packages": 1}
    assert ok(await bob.list_packages()) == []
    assert ok(await alice.list_packages(count="true")) == {"packages": 3}


async def test_listing_a_namespace_that_does_not_exist_is_empty(alice: Caller) -> None:
    assert ok(await alice.list_packages("nobody")) == []
    assert ok(await alice.list_packages("nobody", count="true")) == {"packages": 0}
    message = error(await alice.list_packages("bad ns!"), 400)
    assert message == "The namespace contains illegal characters."


async def test_public_package_of_another_namespace_is_readable(alice: Caller, bob: Caller) -> None:
    ok(await alice.put_package("public", {"publish": True, "parameters": kv(a=1)}))
    ok(await alice.put_action("public/hello"))
    fetched = ok(await bob.get_package("public", alice.name))
    assert (fetched["namespace"], fetched["parameters"]) == (alice.name, kv(a=1))
    assert [a["name"] for a in fetched["actions"]] == ["hello"]


@pytest.mark.parametrize(
    ("name", "reason"),
    [("private", "private"), ("missing", "does not exist"), ("bound", "a binding, even public")],
)
async def test_unreadable_packages_of_another_namespace_are_forbidden(
    alice: Caller, bob: Caller, name: str, reason: str
) -> None:
    ok(await alice.put_package("private"))
    ok(await alice.put_package("public", {"publish": True}))
    ok(await alice.put_package("bound", binding_to("_", "public", publish=True)))
    message = error(await bob.get_package(name, alice.name), 403)
    assert message == forbidden(f"{alice.name}/{name}"), reason


async def test_packages_of_a_namespace_that_does_not_exist_are_forbidden(alice: Caller) -> None:
    assert error(await alice.get_package("any", "nobody"), 403) == forbidden("nobody/any")


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_writes_to_another_namespace_are_forbidden(
    alice: Caller, bob: Caller, method: str
) -> None:
    ok(await alice.put_package("public", {"publish": True}))
    response = await bob.request(method, f"{alice.name}/packages/public", {})
    assert error(response, 403) == forbidden(f"{alice.name}/public")
    assert ok(await alice.get_package("public"))["version"] == "0.0.1"


# Deletion.


async def test_delete_empty_package_returns_it(alice: Caller) -> None:
    created = ok(await alice.put_package("demo", {"parameters": kv(a=1)}))
    assert ok(await alice.delete_package("demo")) == created
    assert error(await alice.get_package("demo"), 404) == NOT_FOUND
    assert error(await alice.delete_package("demo"), 404) == NOT_FOUND


async def test_delete_binding(alice: Caller) -> None:
    ok(await alice.put_package("demo"))
    ok(await alice.put_action("demo/hello"))
    created = ok(await alice.put_package("mine", binding_to("_", "demo")))
    assert ok(await alice.delete_package("mine")) == created
    assert [a["name"] for a in ok(await alice.get_package("demo"))["actions"]] == ["hello"]


async def code_blobs(settings: Settings, code: str) -> int:
    digest = hashlib.sha256(code.encode()).hexdigest()

    async def count(session: AsyncSession) -> int:
        query = select(func.count()).select_from(CodeBlobRow).where(CodeBlobRow.digest == digest)
        return int(await session.scalar(query) or 0)

    return await in_transaction(settings, count)


@pytest.mark.parametrize("force", [None, "false", "no"])
async def test_delete_non_empty_package_needs_force(alice: Caller, force: str | None) -> None:
    ok(await alice.put_package("demo"))
    ok(await alice.put_action("demo/a"))
    ok(await alice.put_action("demo/b"))
    params = {} if force is None else {"force": force}
    message = error(await alice.delete_package("demo", **params), 409)
    assert message == (
        "Package not empty (contains 2 entities). Set force param or delete package contents."
    )
    assert len(ok(await alice.get_package("demo"))["actions"]) == 2


async def test_force_delete_removes_actions_and_their_code(
    alice: Caller, settings: Settings
) -> None:
    shared = "function main() { return {shared: true} }"
    own = "function main() { return {own: true} }"
    ok(await alice.put_package("demo"))
    ok(await alice.put_action("demo/a", code=own))
    ok(await alice.put_action("demo/b", code=shared))
    ok(await alice.put_action("kept", code=shared))
    deleted = ok(await alice.delete_package("demo", force="true"))
    assert (deleted["name"], deleted["binding"]) == ("demo", {})
    assert error(await alice.get_package("demo"), 404) == NOT_FOUND
    response = await alice.request("GET", "_/actions/demo/a")
    assert response.status_code == 404, response.text
    assert await code_blobs(settings, own) == 0
    assert await code_blobs(settings, shared) == 1
    ok(await alice.request("GET", "_/actions/kept"))


async def test_actions_cannot_be_put_into_a_binding(alice: Caller) -> None:
    ok(await alice.put_package("demo"))
    ok(await alice.put_package("mine", binding_to("_", "demo")))
    message = error(await alice.put_action("mine/hello"), 400)
    assert message == "Operation not permitted on package binding."


async def test_head_and_cors_on_package_routes(alice: Caller) -> None:
    ok(await alice.put_package("demo"))
    response = await alice.client.head("/api/v1/namespaces/_/packages/demo", headers=alice.headers)
    assert response.status_code == 200
    response = await alice.client.options("/api/v1/namespaces/_/packages/demo")
    assert response.status_code == 200
    assert "PUT" in response.headers["access-control-allow-methods"]
