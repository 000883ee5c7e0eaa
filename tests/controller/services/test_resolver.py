"""The permission matrix of `resolver.resolve`, against the real database on each backend:
which `namespace/[package/]name` a caller may invoke, with what parameter layers, and how a
denial reads (shared/spec/openwhisk.md §2.6, §3.6)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from controller.actionspec import ActionSpec, ExecSpec
from controller.domain import KeyValue
from controller.errors import HomerunError, NotAuthorized, NotFound
from controller.names import SYSTEM_NAMESPACE, ActionName
from controller.runtimes import load_manifest
from controller.services import actions, namespaces, packages, resolver
from controller.services.actions import WriteContext
from controller.services.packages import BindingRef, PackageSpec
from controller.services.resolver import Target
from controller.settings import Settings
from controller.setup import in_transaction
from tests.conftest import _reset
from tests.controller.api.openwhisk_packages.support import NOT_FOUND, forbidden
from tests.controller.api.openwhisk_packages.test_package_rules import kvs

CODE = "function main(p) { return p; }"
Layers = tuple[tuple[KeyValue, ...], ...]

# The packages' parameters, as the layers should carry them.
TOOLS = kvs(t=1, shared="tools")
MINE = kvs(t=2)
PUBLIC = kvs(host="bob", port=1)
BOBS = kvs(port=2, extra=True)


async def _build(session: AsyncSession, settings: Settings) -> None:
    """alice (the usual caller) and bob, each with own, packaged, shared and bound actions."""
    ctx = WriteContext(load_manifest(), settings.limits)
    alice = await namespaces.ensure(session, None, None, name="alice")
    bob = await namespaces.ensure(session, None, None, name="bob")

    async def package(
        owner: str,
        name: str,
        *,
        parameters: tuple[KeyValue, ...] = (),
        publish: bool = False,
        binding: BindingRef | None = None,
        overwrite: bool = False,
    ) -> None:
        caller = alice if owner == "alice" else bob
        spec = PackageSpec(parameters=parameters, publish=publish, binding=binding)
        await packages.put_package(
            session, caller, name, spec, settings.limits, overwrite=overwrite
        )

    async def action(owner: str, name: str, *, publish: bool = False) -> None:
        caller = alice if owner == "alice" else bob
        spec = ActionSpec(
            exec=ExecSpec(kind="nodejs:18", code=CODE),
            parameters=kvs(own=name),  # the action's own: never part of the layers
            publish=publish,
        )
        await actions.create_action(session, caller, ActionName.parse(name), spec, ctx)

    await action("alice", "hello")
    await package("alice", "tools", parameters=TOOLS)
    await action("alice", "tools/hammer")
    await package("alice", "mine", binding=BindingRef("alice", "tools"), parameters=MINE)
    await package("alice", "gone")
    await package("alice", "dangling", binding=BindingRef("alice", "gone"))
    await packages.delete_package(session, alice, "gone", force=True)

    await action("bob", "plain", publish=True)  # a published action outside any package
    await package("bob", "public", publish=True, parameters=PUBLIC)
    await action("bob", "public/echo")
    await package("bob", "private", parameters=kvs(secret="s"))
    await action("bob", "private/secret", publish=True)
    await package("bob", "later", publish=True)
    await action("bob", "later/echo")
    await package("bob", "bobbind", publish=True, binding=BindingRef("bob", "public"))

    await package("alice", "bobs", binding=BindingRef("bob", "public"), parameters=BOBS)
    await package("alice", "laters", binding=BindingRef("bob", "later"))
    await package("alice", "utils", binding=BindingRef(SYSTEM_NAMESPACE, "utils"))
    await package("bob", "later", overwrite=True, publish=False)  # unpublished after binding


@pytest.fixture
async def world(settings: Settings) -> Settings:
    await _reset(settings)
    await in_transaction(settings, lambda session: _build(session, settings))
    return settings


async def resolve(settings: Settings, caller: str, namespace: str, name: str) -> Target:
    async def work(session: AsyncSession) -> Target:
        me = await namespaces.get_by_name(session, caller)
        assert me is not None
        return await resolver.resolve(session, me, namespace, ActionName.parse(name))

    return await in_transaction(settings, work)


@dataclass(frozen=True)
class Allowed:
    owner: str
    package: str
    name: str
    layers: Layers
    binding: str | None = None


@dataclass(frozen=True)
class Denied:
    error: type[HomerunError]
    message: str


NO_PARAMS: Layers = ((),)

# (caller, namespace, name, expected)
MATRIX = [
    pytest.param("alice", "alice", "hello", Allowed("alice", "", "hello", NO_PARAMS),
                 id="own-default-package"),
    pytest.param("alice", "alice", "tools/hammer", Allowed("alice", "tools", "hammer", (TOOLS,)),
                 id="own-package"),
    pytest.param("alice", "bob", "public/echo", Allowed("bob", "public", "echo", (PUBLIC,)),
                 id="other-published-package"),
    pytest.param("alice", SYSTEM_NAMESPACE, "utils/echo",
                 Allowed(SYSTEM_NAMESPACE, "utils", "echo", ((),)), id="system-catalog"),
    pytest.param("alice", "bob", "private/secret",
                 Denied(NotAuthorized, forbidden("bob/private/secret")),
                 id="other-unpublished-package"),
    pytest.param("alice", "bob", "plain", Denied(NotAuthorized, forbidden("bob/plain")),
                 id="other-default-package-even-if-the-action-is-published"),
    pytest.param("alice", "alice", "bobs/echo",
                 Allowed("bob", "public", "echo", (PUBLIC, BOBS), binding="alice/bobs"),
                 id="own-binding-of-other-published-package"),
    pytest.param("alice", "alice", "laters/echo", Denied(NotAuthorized, forbidden("bob/later")),
                 id="own-binding-of-package-since-unpublished"),
    pytest.param("alice", "alice", "mine/hammer",
                 Allowed("alice", "tools", "hammer", (TOOLS, MINE), binding="alice/mine"),
                 id="own-binding-of-own-package"),
    pytest.param("alice", "alice", "utils/echo",
                 Allowed(SYSTEM_NAMESPACE, "utils", "echo", ((), ()), binding="alice/utils"),
                 id="own-binding-of-system-catalog"),
    pytest.param("alice", "alice", "dangling/hammer", Denied(NotFound, NOT_FOUND),
                 id="own-binding-of-deleted-own-package"),
    pytest.param("alice", "bob", "bobbind/echo",
                 Denied(NotAuthorized, forbidden("bob/bobbind/echo")),
                 id="other-binding-even-if-published"),
    pytest.param("bob", "alice", "bobs/echo", Denied(NotAuthorized, forbidden("alice/bobs/echo")),
                 id="other-binding-of-the-callers-own-package"),
    pytest.param("alice", "alice", "nope", Denied(NotFound, NOT_FOUND), id="own-missing"),
    pytest.param("alice", "alice", "tools/nope", Denied(NotFound, NOT_FOUND),
                 id="own-missing-in-package"),
    pytest.param("alice", "alice", "nopkg/nope", Denied(NotFound, NOT_FOUND),
                 id="own-missing-package"),
    pytest.param("alice", "bob", "nope", Denied(NotAuthorized, forbidden("bob/nope")),
                 id="other-missing"),
    pytest.param("alice", "bob", "nopkg/nope", Denied(NotAuthorized, forbidden("bob/nopkg/nope")),
                 id="other-missing-package"),
    pytest.param("alice", "bob", "public/nope",
                 Denied(NotAuthorized, forbidden("bob/public/nope")),
                 id="other-missing-in-published-package"),
    pytest.param("alice", "alice", "bobs/nope",
                 Denied(NotAuthorized, forbidden("bob/public/nope")),
                 id="own-binding-missing-action"),
    pytest.param("alice", "nobody", "nope", Denied(NotAuthorized, forbidden("nobody/nope")),
                 id="missing-namespace"),
    pytest.param("alice", "nobody", "pkg/nope", Denied(NotAuthorized, forbidden("nobody/pkg/nope")),
                 id="missing-namespace-packaged"),
    pytest.param("bob", "bob", "private/secret",
                 Allowed("bob", "private", "secret", (kvs(secret="s"),)),
                 id="owner-reaches-its-unpublished-package"),
    pytest.param("bob", "bob", "bobbind/echo",
                 Allowed("bob", "public", "echo", (PUBLIC, ()), binding="bob/bobbind"),
                 id="owner-reaches-through-its-own-binding"),
]  # fmt: skip


@pytest.mark.parametrize(("caller", "namespace", "name", "expected"), MATRIX)
async def test_resolve(
    world: Settings, caller: str, namespace: str, name: str, expected: Allowed | Denied
) -> None:
    if isinstance(expected, Denied):
        with pytest.raises(HomerunError) as raised:
            await resolve(world, caller, namespace, name)
        assert type(raised.value) is expected.error
        assert raised.value.message == expected.message
        return
    target = await resolve(world, caller, namespace, name)
    assert target.owner.name == expected.owner
    action = target.action
    assert (action.namespace, action.package, action.name) == (
        expected.owner,
        expected.package,
        expected.name,
    )
    assert action.exec.code is None, "resolved without code"
    assert target.layers == expected.layers
    assert target.binding == expected.binding


async def test_a_shared_package_stops_resolving_once_unpublished(world: Settings) -> None:
    """The decision is made at each call, from what is stored now."""
    assert (await resolve(world, "alice", "bob", "public/echo")).owner.name == "bob"
    assert (await resolve(world, "alice", "alice", "bobs/echo")).binding == "alice/bobs"

    async def unpublish(session: AsyncSession) -> None:
        bob = await namespaces.get_by_name(session, "bob")
        assert bob is not None
        spec = PackageSpec(publish=False)
        await packages.put_package(session, bob, "public", spec, world.limits, overwrite=True)

    await in_transaction(world, unpublish)
    for namespace, name in (("bob", "public/echo"), ("alice", "bobs/echo")):
        with pytest.raises(NotAuthorized) as raised:
            await resolve(world, "alice", namespace, name)
        path = "bob/public/echo" if namespace == "bob" else "bob/public"
        assert raised.value.message == forbidden(path)
    assert (await resolve(world, "bob", "bob", "public/echo")).layers == (PUBLIC,)
