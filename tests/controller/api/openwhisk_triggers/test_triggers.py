"""`/api/v1/namespaces/{ns}/triggers`: create, read, update, delete, list, and firing without
an execution engine (shared/spec/openwhisk.md §2.2, §2.3, §3.3, §10.1)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from tests.controller.api.openwhisk_triggers.conftest import API, Caller, error_of

FEED = "/whisk.system/alarms/alarm"


async def test_create_returns_the_trigger(ow: Caller) -> None:
    response = await ow.put(
        "triggers",
        "periodic",
        {
            "namespace": "ignored",
            "name": "ignored",
            "parameters": [{"key": "type", "value": "webhook"}],
            "annotations": [{"key": "feed", "value": FEED}],
            "unknown": True,
        },
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body.pop("updated"), int)
    assert body == {
        "namespace": ow.namespace,
        "name": "periodic",
        "version": "0.0.1",
        "publish": False,
        "parameters": [{"key": "type", "value": "webhook"}],
        "limits": {},
        "annotations": [{"key": "feed", "value": FEED}],
    }


async def test_get_returns_what_put_stored(ow: Caller) -> None:
    created = await ow.trigger("t", parameters=[{"key": "a", "value": {"b": [1, 2]}}])

    by_default = await ow.get("triggers", "t")
    by_name = await ow.client.get(ow.url("triggers", "t", ow.namespace), headers=ow.headers)

    assert by_default.status_code == by_name.status_code == 200
    assert by_default.json() == by_name.json() == created


async def test_get_of_a_missing_trigger_is_404(ow: Caller) -> None:
    response = await ow.get("triggers", "nope")

    assert response.status_code == 404
    assert error_of(response) == "The requested resource does not exist."


async def test_put_of_an_existing_trigger_without_overwrite_is_409(ow: Caller) -> None:
    await ow.trigger("t")

    response = await ow.put("triggers", "t", {"parameters": [{"key": "a", "value": 1}]})

    assert response.status_code == 409
    assert error_of(response) == "resource already exists"
    assert (await ow.get("triggers", "t")).json()["parameters"] == []


async def test_overwrite_replaces_supplied_fields_and_bumps_the_version(ow: Caller) -> None:
    await ow.trigger(
        "t",
        parameters=[{"key": "a", "value": 1}],
        annotations=[{"key": "x", "value": "y"}],
    )

    keep = await ow.put("triggers", "t", {"publish": True}, overwrite="true")
    replace = await ow.put(
        "triggers", "t", {"annotations": [{"key": "z", "value": 2}]}, overwrite="true"
    )
    versioned = await ow.put("triggers", "t", {"version": "1.2.3"}, overwrite="yes")

    assert keep.status_code == replace.status_code == versioned.status_code == 200
    assert keep.json()["version"] == "0.0.2"
    assert keep.json()["parameters"] == [{"key": "a", "value": 1}]
    assert keep.json()["annotations"] == [{"key": "x", "value": "y"}]
    assert keep.json()["publish"] is True
    assert replace.json()["version"] == "0.0.3"
    assert replace.json()["annotations"] == [{"key": "z", "value": 2}]
    assert replace.json()["parameters"] == [{"key": "a", "value": 1}]
    assert versioned.json()["version"] == "1.2.3"


async def test_overwrite_creates_a_missing_trigger(ow: Caller) -> None:
    response = await ow.put("triggers", "t", {}, overwrite="true")

    assert response.status_code == 200
    assert response.json()["version"] == "0.0.1"


@pytest.mark.parametrize(
    "feed",
    [FEED, "whisk.system/alarms/alarm", "/_/myfeed", "alarm"],
)
async def test_a_feed_annotation_naming_an_entity_is_accepted(ow: Caller, feed: str) -> None:
    response = await ow.put("triggers", "t", {"annotations": [{"key": "feed", "value": feed}]})

    assert response.status_code == 200, response.text


@pytest.mark.parametrize("feed", [42, None, {"name": "alarm"}, "", "/a/b/c/d", "bad name!"])
async def test_a_feed_annotation_that_is_not_an_entity_path_is_400(
    ow: Caller, feed: object
) -> None:
    response = await ow.put("triggers", "t", {"annotations": [{"key": "feed", "value": feed}]})

    assert response.status_code == 400
    assert error_of(response) == "Feed name is not valid"
    assert (await ow.get("triggers", "t")).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"parameters": {"a": 1}},
        {"annotations": [{"value": 1}]},
        {"publish": "yes"},
        {"version": "1.0"},
    ],
)
async def test_an_invalid_body_is_400(ow: Caller, body: object) -> None:
    response = await ow.put("triggers", "t", body)

    assert response.status_code == 400, response.text


async def test_a_body_that_is_not_an_object_is_400(ow: Caller) -> None:
    response = await ow.put("triggers", "t", [1, 2])

    assert response.status_code == 400
    assert error_of(response).startswith("The request content was malformed:")


async def test_oversized_parameters_are_413(ow: Caller) -> None:
    big = [{"key": "a", "value": "x" * (1024 * 1024)}]

    response = await ow.put("triggers", "t", {"parameters": big})

    assert response.status_code == 413
    assert error_of(response).startswith("parameters larger than allowed:")


async def test_delete_returns_the_deleted_trigger(ow: Caller) -> None:
    created = await ow.trigger("t", parameters=[{"key": "a", "value": 1}])

    deleted = await ow.delete("triggers", "t")

    assert deleted.status_code == 200
    assert deleted.json() == created
    assert (await ow.get("triggers", "t")).status_code == 404
    again = await ow.delete("triggers", "t")
    assert again.status_code == 404
    assert error_of(again) == "The requested resource does not exist."


async def test_list_gives_summaries_newest_first(ow: Caller) -> None:
    for name in ("one", "two", "three"):
        await ow.trigger(name, parameters=[{"key": "p", "value": name}])

    response = await ow.get("triggers")

    assert response.status_code == 200
    listed = response.json()
    assert [t["name"] for t in listed] == ["three", "two", "one"]
    assert set(listed[0]) == {"namespace", "name", "version", "publish", "annotations", "updated"}
    assert listed[0]["namespace"] == ow.namespace


async def test_list_pages_and_counts(ow: Caller) -> None:
    for name in ("one", "two", "three"):
        await ow.trigger(name)

    page = await ow.get("triggers", skip=1, limit=1)
    count = await ow.get("triggers", count="true")
    too_many = await ow.get("triggers", limit=201)

    assert [t["name"] for t in page.json()] == ["two"]
    assert count.json() == {"triggers": 3}
    assert too_many.status_code == 400
    assert error_of(too_many) == (
        "The query parameter 'limit' was malformed:\n"
        "The value '201' is not in the range of 0 to 200 for triggers."
    )


async def test_names_with_a_slash_are_400(ow: Caller) -> None:
    for method in ("GET", "PUT", "DELETE", "POST"):
        response = await ow.client.request(
            method, ow.url("triggers", "pkg/t"), headers=ow.headers, json={}
        )

        assert response.status_code == 400, method
        assert error_of(response) == "The name of the entity contains illegal characters."


async def test_another_namespace_is_403(
    ow: Caller, caller_of: Callable[[str, str], Awaitable[Caller]]
) -> None:
    other = await caller_of("other", "int2")
    await other.trigger("theirs")
    url = ow.url("triggers", "theirs", other.namespace)

    for method in ("GET", "PUT", "DELETE", "POST"):
        response = await ow.client.request(method, url, headers=ow.headers, json={})

        assert response.status_code == 403, method
        assert error_of(response) == (
            f"The supplied authentication is not authorized to access '{other.namespace}/theirs'."
        )
    listing = await ow.client.get(f"{API}/{other.namespace}/triggers", headers=ow.headers)
    assert listing.status_code == 403


async def test_without_credentials_is_401(ow: Caller) -> None:
    response = await ow.client.get(ow.url("triggers", "t"))

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Basic realm="OpenWhisk secure realm"'


async def test_firing_a_missing_trigger_is_404(ow: Caller) -> None:
    response = await ow.post("triggers", "nope", {"a": 1})

    assert response.status_code == 404
    assert error_of(response) == "The requested resource does not exist."


async def test_firing_a_trigger_without_rules_is_204_and_records_nothing(ow: Caller) -> None:
    await ow.trigger("t")

    response = await ow.post("triggers", "t", {"a": 1})

    assert response.status_code == 204
    assert response.content == b""
    assert (await ow.get("activations", count="true")).json() == {"activations": 0}


async def test_firing_a_trigger_whose_rules_are_all_disabled_is_204(ow: Caller) -> None:
    await ow.action("hello")
    await ow.trigger("t")
    await ow.rule("r", "/_/t", "/_/hello")
    assert (await ow.post("rules", "r", {"status": "inactive"})).status_code == 200

    response = await ow.post("triggers", "t")

    assert response.status_code == 204


async def test_firing_needs_a_json_object_payload(ow: Caller) -> None:
    await ow.trigger("t")

    response = await ow.post("triggers", "t", [1])

    assert response.status_code == 400


async def test_firing_an_active_rule_without_an_execution_engine_is_503(ow: Caller) -> None:
    await ow.action("hello")
    await ow.trigger("t")
    await ow.rule("r", "/_/t", "/_/hello")

    response = await ow.post("triggers", "t", {})

    assert response.status_code == 503
    assert (await ow.get("activations", count="true")).json() == {"activations": 0}
