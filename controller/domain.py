"""The internal domain model. Both API surfaces map these to their own DTOs."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

JSON = Any


@dataclass(frozen=True)
class KeyValue:
    """A parameter or annotation. `init` parameters reach the action's environment at init."""

    key: str
    value: JSON
    init: bool = False


def kv_json(pairs: Iterable[KeyValue]) -> list[dict[str, Any]]:
    """Parameters or annotations as JSON, stored and shown alike: `init` only when set."""
    return [
        {"key": kv.key, "value": kv.value, **({"init": True} if kv.init else {})} for kv in pairs
    ]


def kv_from_json(raw: Iterable[Mapping[str, Any]] | None) -> tuple[KeyValue, ...]:
    """Stored parameters or annotations (`kv_json`'s) as KeyValues."""
    return tuple(
        KeyValue(str(kv["key"]), kv.get("value"), bool(kv.get("init", False))) for kv in raw or ()
    )


@dataclass(frozen=True)
class ActionLimits:
    timeout: int
    memory: int
    logs: int
    concurrency: int = 1


@dataclass(frozen=True)
class Exec:
    """What runs: a runtime kind with code, a blackbox image, or a sequence of components."""

    kind: str
    code: str | None = None
    binary: bool = False
    main: str | None = None
    image: str | None = None
    components: tuple[str, ...] = ()


@dataclass(frozen=True)
class Namespace:
    id: int
    name: str
    org_id: str | None
    int_id: str | None
    uuid: str
    key: str

    @property
    def auth(self) -> str:
        """The OpenWhisk `uuid:key` credentials of the namespace."""
        return f"{self.uuid}:{self.key}"


@dataclass(frozen=True)
class Action:
    """A stored action. `exec.code` is None when loaded without code (lists)."""

    namespace: str
    package: str
    name: str
    exec: Exec
    limits: ActionLimits
    version: str = "0.0.1"
    publish: bool = False
    parameters: tuple[KeyValue, ...] = ()
    annotations: tuple[KeyValue, ...] = ()
    updated: int = 0
    code_digest: str | None = None

    @property
    def qualified_name(self) -> str:
        return f"{self.package}/{self.name}" if self.package else self.name

    @property
    def path(self) -> str:
        """`namespace/[package/]name`, as OpenWhisk's `path` annotation spells it."""
        return f"{self.namespace}/{self.qualified_name}"

    @property
    def conductor(self) -> bool:
        """Whether this is a conductor action (annotation `conductor`, truthy as OpenWhisk
        reads annotations: true, a non-zero number, a non-empty string, an object)."""
        value = next((kv.value for kv in self.annotations if kv.key == "conductor"), None)
        if isinstance(value, bool) or value is None:
            return bool(value)
        return bool(value) if isinstance(value, int | float | str) else True


class IntegrationStatus(enum.StrEnum):
    """Whether an event registration delivers events to its action."""

    ENABLED = "enabled"
    DISABLED = "disabled"


@dataclass(frozen=True)
class EventOfInterest:
    event_code: str
    provider: str


@dataclass(frozen=True)
class EventRegistration:
    namespace: str
    id: str
    registration_id: str
    client_id: str
    name: str
    description: str | None
    type: str | None
    integration_status: IntegrationStatus
    delivery_type: str | None
    webhook_url: str | None
    events_of_interest: tuple[EventOfInterest, ...]
    runtime_action: str
    consumer_id: str | None = None
    application_id: str | None = None
    updated: int = 0


class TokenScope(enum.StrEnum):
    """What an operator token reaches: one organisation's namespaces, or everything."""

    ORG = "org"
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    """The caller of a seed endpoint, once authenticated."""

    token_id: int
    scope: TokenScope
    org_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.scope is TokenScope.ADMIN

    def can_access_org(self, org_id: str) -> bool:
        return self.is_admin or self.org_id == org_id

    def reaches(self, namespace: Namespace) -> bool:
        """An admin token reaches every namespace, an org token those of its organization."""
        return self.is_admin or (
            namespace.org_id is not None and self.can_access_org(namespace.org_id)
        )


@dataclass(frozen=True)
class Credential:
    """An operator token or API key as listed: never the secret itself."""

    id: int
    kind: str
    prefix: str
    scope: TokenScope | None
    org_id: str | None
    description: str | None
    created: int
    revoked: int | None = None
    extra: dict[str, JSON] = field(default_factory=dict)
