"""The pure package rules, and `resolve_binding`, which the invoke path calls."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from controller.domain import Action, ActionLimits, Exec, KeyValue, Namespace
from controller.errors import InvalidInput, NotAuthorized, NotFound
from controller.services import namespaces, packages
from controller.services.packages import BindingRef
from controller.settings import Settings
from controller.setup import in_transaction
from tests.controller.api.openwhisk_packages.support import Caller, binding_to, kv

CALLER = Namespace(1, "guest", None, None, "u", "k")


def kvs(**pairs: Any) -> tuple[KeyValue, ...]:
    return tuple(KeyValue(k, v) for k, v in pairs.items())


@pytest.mark.parametrize(
    ("package", "binding", "expected"),
    [
        ((), (), ()),
        (kvs(a=1), (), kvs(a=1)),
        ((), kvs(b=2), kvs(b=2)),
        (kvs(a=1, b=2), kvs(b=20, c=3), kvs(a=1, b=20, c=3)),
        (kvs(a=1), kvs(a=None), kvs(a=None)),
        ((KeyValue("s", "x", init=True),), kvs(s="y"), kvs(s="y")),
    ],
)
def test_inherit_parameters(
    package: tuple[KeyValue, ...], binding: tuple[KeyValue, ...], expected: tuple[KeyValue, ...]
) -> None:
    assert packages.inherit_parameters(package, binding) == expected


def _action(annotations: tuple[KeyValue, ...]) -> Action:
    return Action(
        namespace="guest",
        package="p",
        name="a",
        exec=Exec(kind="nodejs:18"),
        limits=ActionLimits(60_000, 256, 10),
        annotations=annotations,
    )


@pytest.mark.parametrize(
    ("annotations", "feed"),
    [
        ((), False),
        (kvs(description="x"), False),
        (kvs(feed=True), True),
        (kvs(feed="/whisk.system/alarms/alarm"), True),
        (kvs(feed=False), True),  # OpenWhisk tests presence, not the value
    ],
)
def test_is_feed(annotations: tuple[KeyValue, ...], feed: bool) -> None:
    assert packages.is_feed(_action(annotations)) is feed


@pytest.mark.parametrize(
    ("annotations", "binding", "expected"),
    [
        ((), None, ()),
        (kvs(binding="forged", a=1), None, kvs(a=1)),
        (
            kvs(a=1, binding="forged"),
            BindingRef("ns", "pkg"),
            kvs(a=1, binding={"namespace": "ns", "name": "pkg"}),
        ),
    ],
)
def test_with_binding_annotation(
    annotations: tuple[KeyValue, ...], binding: BindingRef | None, expected: tuple[KeyValue, ...]
) -> None:
    assert packages.with_binding_annotation(annotations, binding) == expected


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        (BindingRef("_", "pkg"), BindingRef("guest", "pkg")),
        (BindingRef("guest", "pkg"), BindingRef("guest", "pkg")),
        (BindingRef("whisk.system", "utils"), BindingRef("whisk.system", "utils")),
    ],
)
def test_resolve_ref(ref: BindingRef, expected: BindingRef) -> None:
    assert packages.resolve_ref(ref, CALLER) == expected


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (BindingRef("bad ns!", "pkg"), "The namespace contains illegal characters."),
        (BindingRef("_", ""), "The name of the entity contains illegal characters."),
        (BindingRef("", "pkg"), "The namespace contains illegal characters."),
    ],
)
def test_resolve_ref_rejects_bad_names(ref: BindingRef, message: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        packages.resolve_ref(ref, CALLER)
    assert raised.value.message == message


# resolve_binding, against the database.

Resolved = tuple[str, str, tuple[tuple[KeyValue, ...], ...]] | None


async def resolve(settings: Settings, caller: Caller, namespace: str, package: str) -> Resolved:
    async def work(session: AsyncSession) -> Resolved:
        me = await namespaces.get_by_name(session, caller.name)
        assert me is not None
        found = await packages.resolve_binding(session, me, namespace, package)
        if found is None:
            return None
        owner, name, layers = found
        return owner.name, name, layers

    return await in_transaction(settings, work)


async def test_resolve_binding_to_own_and_public_packages(
    alice: Caller, bob: Caller, settings: Settings
) -> None:
    for who, name, body in [
        (alice, "demo", {"parameters": kv(a=1, b=2)}),
        (alice, "mine", binding_to("_", "demo", parameters=kv(b=3))),
        (bob, "public", {"publish": True, "parameters": kv(host="h")}),
        (alice, "bobs", binding_to(bob.name, "public")),
        (alice, "utils", binding_to("whisk.system", "utils", parameters=kv(x=1))),
    ]:
        response = await who.put_package(name, body)
        assert response.status_code == 200, response.text
    assert await resolve(settings, alice, alice.name, "mine") == (
        alice.name,
        "demo",
        (kvs(a=1, b=2), kvs(b=3)),
    )
    assert await resolve(settings, alice, alice.name, "bobs") == (
        bob.name,
        "public",
        (kvs(host="h"), ()),
    )
    assert await resolve(settings, alice, alice.name, "utils") == (
        "whisk.system",
        "utils",
        ((), kvs(x=1)),
    )


async def test_resolve_binding_is_none_unless_a_binding_of_the_caller(
    alice: Caller, bob: Caller, settings: Settings
) -> None:
    assert (await alice.put_package("demo")).status_code == 200
    assert (await alice.put_package("mine", binding_to("_", "demo"))).status_code == 200
    assert await resolve(settings, alice, alice.name, "") is None
    assert await resolve(settings, alice, alice.name, "demo") is None
    assert await resolve(settings, alice, alice.name, "missing") is None
    assert await resolve(settings, bob, alice.name, "mine") is None  # not bob's binding
    assert await resolve(settings, bob, bob.name, "mine") is None


async def test_resolve_binding_whose_package_is_gone_or_private(
    alice: Caller, bob: Caller, settings: Settings
) -> None:
    assert (await alice.put_package("demo")).status_code == 200
    assert (await alice.put_package("mine", binding_to("_", "demo"))).status_code == 200
    assert (await bob.put_package("public", {"publish": True})).status_code == 200
    assert (await alice.put_package("bobs", binding_to(bob.name, "public"))).status_code == 200
    assert (await alice.delete_package("demo")).status_code == 200
    private = await bob.put_package("public", {"publish": False}, overwrite="true")
    assert private.status_code == 200
    with pytest.raises(NotFound):
        await resolve(settings, alice, alice.name, "mine")
    with pytest.raises(NotAuthorized) as raised:
        await resolve(settings, alice, alice.name, "bobs")
    assert raised.value.message == (
        f"The supplied authentication is not authorized to access '{bob.name}/public'."
    )
