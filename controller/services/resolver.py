"""What a caller may invoke: the one place that turns `namespace/[package/]name` into an action
with its parameter layers, under one permission policy (DESIGN.md, invariant 1).

The policy, as OpenWhisk's: a caller reaches
- its own actions (default package or its own packages);
- actions in a published package of another namespace (never through that namespace's
  bindings);
- actions reached through one of its own bindings, whose bound package it must still be able
  to read.
Anything of another namespace that is not shared is NotAuthorized naming the path (a missing
namespace or action there looks the same: 403, never 404); a missing action of the caller's
own is NotFound.

Every way in uses it: the OpenWhisk API (the caller's namespace), the seed API's execute, web
actions (the URL's namespace as the caller), rule targets (the trigger's namespace), and
sequence components (the namespace invoking the sequence, checked as each component runs).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from controller import messages
from controller.domain import Action, Namespace
from controller.errors import NotAuthorized, NotFound
from controller.names import ActionName
from controller.services import actions, namespaces, packages
from controller.services.packages import Layers


@dataclass(frozen=True)
class Target:
    """An action as a caller may invoke it."""

    owner: Namespace  # the namespace the action lives in
    action: Action  # without code
    layers: Layers  # the package's parameters (then the binding's)
    binding: str | None = None  # `caller/binding` when reached through one of its bindings


async def resolve(
    session: AsyncSession, caller: Namespace, namespace: str, name: ActionName
) -> Target:
    """The action `namespace/name` as `caller` may invoke it (see the module's policy)."""
    bound = await packages.resolve_binding(session, caller, namespace, name.package)
    if bound is not None:
        home, package, layers = bound
        owner, action = await _readable(session, caller, home.name, ActionName(package, name.name))
        return Target(owner, action, layers, binding=f"{caller.name}/{name.package}")
    owner, action = await _readable(session, caller, namespace, name)
    return Target(owner, action, (await actions.package_parameters(session, owner, name.package),))


async def _readable(
    session: AsyncSession, caller: Namespace, namespace: str, name: ActionName
) -> tuple[Namespace, Action]:
    denied = NotAuthorized(messages.not_authorized(f"{namespace}/{name}"))
    owner = caller if namespace == caller.name else await namespaces.get_by_name(session, namespace)
    if owner is None:
        raise denied
    foreign = owner.id != caller.id
    if foreign and not (
        name.package and await actions.package_is_public(session, owner, name.package)
    ):
        raise denied
    try:
        return owner, await actions.get_action(session, owner, name, with_code=False)
    except NotFound:
        raise denied if foreign else NotFound(messages.ENTITY_NOT_FOUND) from None
