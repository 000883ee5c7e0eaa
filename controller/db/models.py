"""SQLAlchemy 2 typed models. Timestamps are epoch milliseconds, as OpenWhisk reports them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from controller.db.sealed import SealedJSON, SealedString

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

NAME = String(256)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class NamespaceRow(Base):
    __tablename__ = "namespaces"
    __table_args__ = (UniqueConstraint("org_id", "int_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(NAME, unique=True)
    org_id: Mapped[str | None] = mapped_column(NAME)
    int_id: Mapped[str | None] = mapped_column(NAME)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    key: Mapped[str] = mapped_column(SealedString)
    limits: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created: Mapped[int] = mapped_column(BigInteger)


class PackageRow(Base):
    __tablename__ = "packages"
    __table_args__ = (UniqueConstraint("namespace_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    namespace_id: Mapped[int] = mapped_column(ForeignKey("namespaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(NAME)
    publish: Mapped[bool] = mapped_column(Boolean, default=False)
    binding_namespace: Mapped[str | None] = mapped_column(NAME)
    binding_name: Mapped[str | None] = mapped_column(NAME)
    parameters: Mapped[list[Any]] = mapped_column(SealedJSON, default=list)
    annotations: Mapped[list[Any]] = mapped_column(JSON, default=list)
    version: Mapped[str] = mapped_column(String(64), default="0.0.1")
    updated: Mapped[int] = mapped_column(BigInteger)


class CodeBlobRow(Base):
    """Action code, stored once per content digest (sha256 of the code text)."""

    __tablename__ = "code_blobs"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class ActionRow(Base):
    __tablename__ = "actions"
    __table_args__ = (UniqueConstraint("namespace_id", "package", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    namespace_id: Mapped[int] = mapped_column(ForeignKey("namespaces.id", ondelete="CASCADE"))
    package: Mapped[str] = mapped_column(NAME, default="")
    name: Mapped[str] = mapped_column(NAME)
    kind: Mapped[str] = mapped_column(String(64))
    main: Mapped[str | None] = mapped_column(NAME)
    binary: Mapped[bool] = mapped_column(Boolean, default=False)
    image: Mapped[str | None] = mapped_column(String(512))
    components: Mapped[list[Any] | None] = mapped_column(JSON)
    code_digest: Mapped[str | None] = mapped_column(
        ForeignKey("code_blobs.digest", ondelete="RESTRICT"), index=True
    )
    parameters: Mapped[list[Any]] = mapped_column(SealedJSON, default=list)
    annotations: Mapped[list[Any]] = mapped_column(JSON, default=list)
    timeout: Mapped[int] = mapped_column(Integer)
    memory: Mapped[int] = mapped_column(Integer)
    logs: Mapped[int] = mapped_column(Integer)
    concurrency: Mapped[int] = mapped_column(Integer, default=1)
    version: Mapped[str] = mapped_column(String(64), default="0.0.1")
    publish: Mapped[bool] = mapped_column(Boolean, default=False)
    updated: Mapped[int] = mapped_column(BigInteger)


class ActivationRow(Base):
    __tablename__ = "activations"
    __table_args__ = (
        Index("ix_activations_namespace_start", "namespace_id", "start"),
        Index("ix_activations_namespace_name_start", "namespace_id", "name", "start"),
    )

    activation_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    namespace_id: Mapped[int] = mapped_column(ForeignKey("namespaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(NAME)
    path: Mapped[str] = mapped_column(String(800))
    subject: Mapped[str] = mapped_column(NAME)
    version: Mapped[str] = mapped_column(String(64))
    publish: Mapped[bool] = mapped_column(Boolean, default=False)
    start: Mapped[int] = mapped_column(BigInteger, index=True)
    end: Mapped[int | None] = mapped_column(BigInteger)
    duration: Mapped[int | None] = mapped_column(BigInteger)
    status_code: Mapped[int] = mapped_column(SmallInteger)
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    logs: Mapped[list[Any]] = mapped_column(JSON, default=list)
    annotations: Mapped[list[Any]] = mapped_column(JSON, default=list)
    cause: Mapped[str | None] = mapped_column(String(32))


class EventRegistrationRow(Base):
    __tablename__ = "event_registrations"
    __table_args__ = (UniqueConstraint("namespace_id", "client_id", "registration_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    namespace_id: Mapped[int] = mapped_column(ForeignKey("namespaces.id", ondelete="CASCADE"))
    public_id: Mapped[str] = mapped_column(NAME)
    registration_id: Mapped[str] = mapped_column(NAME)
    client_id: Mapped[str] = mapped_column(NAME)
    name: Mapped[str] = mapped_column(NAME)
    description: Mapped[str | None] = mapped_column(Text)
    type: Mapped[str | None] = mapped_column(NAME)
    integration_status: Mapped[str] = mapped_column(String(16))
    delivery_type: Mapped[str | None] = mapped_column(String(64))
    webhook_url: Mapped[str | None] = mapped_column(Text)
    events_of_interest: Mapped[list[Any]] = mapped_column(JSON)
    runtime_action: Mapped[str] = mapped_column(String(800))
    consumer_id: Mapped[str | None] = mapped_column(NAME)
    application_id: Mapped[str | None] = mapped_column(NAME)
    created: Mapped[int] = mapped_column(BigInteger)
    updated: Mapped[int] = mapped_column(BigInteger)


class SealingKeyRow(Base):
    """The fingerprint of a key that sealed this database's secrets (controller.db.sealed)."""

    __tablename__ = "sealing_keys"

    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    created: Mapped[int] = mapped_column(BigInteger)


class OperatorTokenRow(Base):
    """A seed-API bearer token; only its sha256 digest is stored."""

    __tablename__ = "operator_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str] = mapped_column(String(16))
    org_id: Mapped[str | None] = mapped_column(NAME)
    description: Mapped[str | None] = mapped_column(Text)
    created: Mapped[int] = mapped_column(BigInteger)
    revoked: Mapped[int | None] = mapped_column(BigInteger)


class ApiKeyRow(Base):
    """A seed-API `X-Api-Key`; only its sha256 digest is stored."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    description: Mapped[str | None] = mapped_column(Text)
    created: Mapped[int] = mapped_column(BigInteger)
    revoked: Mapped[int | None] = mapped_column(BigInteger)


class TriggerRow(Base):
    """A trigger. As in OpenWhisk, the status of each rule lives here, in `rules`:
    `{"<ns>/<rule>": {"action": {"path", "name"}, "status"}}` (None until a rule links it)."""

    __tablename__ = "triggers"
    __table_args__ = (UniqueConstraint("namespace_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    namespace_id: Mapped[int] = mapped_column(ForeignKey("namespaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(NAME)
    parameters: Mapped[list[Any]] = mapped_column(SealedJSON, default=list)
    annotations: Mapped[list[Any]] = mapped_column(JSON, default=list)
    rules: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    version: Mapped[str] = mapped_column(String(64), default="0.0.1")
    publish: Mapped[bool] = mapped_column(Boolean, default=False)
    updated: Mapped[int] = mapped_column(BigInteger)


class RuleRow(Base):
    """A rule: a trigger and an action, each as OpenWhisk's `{path, name}` (the path is the
    namespace, or `namespace/package` for a packaged action). Its status is on the trigger."""

    __tablename__ = "rules"
    __table_args__ = (UniqueConstraint("namespace_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    namespace_id: Mapped[int] = mapped_column(ForeignKey("namespaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(NAME)
    trigger_path: Mapped[str] = mapped_column(NAME)
    trigger_name: Mapped[str] = mapped_column(NAME)
    action_path: Mapped[str] = mapped_column(String(513))
    action_name: Mapped[str] = mapped_column(NAME)
    annotations: Mapped[list[Any]] = mapped_column(JSON, default=list)
    version: Mapped[str] = mapped_column(String(64), default="0.0.1")
    publish: Mapped[bool] = mapped_column(Boolean, default=False)
    updated: Mapped[int] = mapped_column(BigInteger)


class LogForwardingRow(Base):
    """Where a namespace's activation logs go (Adobe's log forwarding); absent means the
    default, `adobe_io_runtime`: logs stay in Homerun."""

    __tablename__ = "log_forwarding"

    namespace_id: Mapped[int] = mapped_column(
        ForeignKey("namespaces.id", ondelete="CASCADE"), primary_key=True
    )
    destination: Mapped[str] = mapped_column(String(64))
    config: Mapped[dict[str, Any]] = mapped_column(SealedJSON)
    updated: Mapped[int] = mapped_column(BigInteger)


class StateKeyRow(Base):
    """A key of a namespace's State container (`@adobe/aio-lib-state`): its value as sent, and
    when it expires (epoch ms). An expired row is invisible, and swept later; `id` orders the
    container for listing (the list cursor is the last id seen)."""

    __tablename__ = "state_keys"
    __table_args__ = (
        UniqueConstraint("namespace_id", "key"),
        Index("ix_state_keys_expires", "expires"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    namespace_id: Mapped[int] = mapped_column(ForeignKey("namespaces.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(1024))
    value: Mapped[bytes] = mapped_column(LargeBinary)
    expires: Mapped[int] = mapped_column(BigInteger)
