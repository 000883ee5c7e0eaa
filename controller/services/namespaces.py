"""Namespaces: one per (organization, integration), with OpenWhisk `uuid:key` credentials."""

from __future__ import annotations

import re
import secrets
import string
import uuid

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from controller import messages
from controller.clock import now_ms
from controller.db.models import NamespaceRow
from controller.domain import Namespace
from controller.errors import Conflict, InvalidInput, NotFound
from controller.names import check_segment
from controller.services import codestore

_KEY_ALPHABET = string.ascii_letters + string.digits
KEY_LENGTH = 64


def _view(row: NamespaceRow) -> Namespace:
    return Namespace(
        id=row.id, name=row.name, org_id=row.org_id, int_id=row.int_id, uuid=row.uuid, key=row.key
    )


def _same_owner(row: NamespaceRow, org_id: str | None, int_id: str | None) -> Namespace:
    """The namespace of `row`, if it belongs to (org_id, int_id); names like `a-b-c` can be
    derived from two different pairs, and must not hand one pair the other's credentials."""
    if (row.org_id, row.int_id) != (org_id, int_id):
        raise Conflict(
            f"The namespace name '{row.name}' is taken by another organization or integration."
        )
    return _view(row)


def new_key() -> str:
    return "".join(secrets.choice(_KEY_ALPHABET) for _ in range(KEY_LENGTH))


def namespace_name(org_id: str, int_id: str) -> str:
    """The namespace name of an (organization, integration) pair: `<orgId>-<intId>`."""
    name = f"{org_id}-{int_id}"
    try:
        return check_segment(name, namespace=True)
    except InvalidInput as exc:
        raise InvalidInput(f"orgId/intId: {exc.message}") from None


async def get_by_ids(session: AsyncSession, org_id: str, int_id: str) -> Namespace:
    row = await session.scalar(
        select(NamespaceRow).where(NamespaceRow.org_id == org_id, NamespaceRow.int_id == int_id)
    )
    if row is None:
        raise NotFound(messages.namespace_not_found(org_id, int_id))
    return _view(row)


async def get_by_name(session: AsyncSession, name: str) -> Namespace | None:
    row = await session.scalar(select(NamespaceRow).where(NamespaceRow.name == name))
    return None if row is None else _view(row)


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_KEY = re.compile(rf"[A-Za-z0-9]{{{KEY_LENGTH},256}}")


def parse_auth(auth: str) -> tuple[str, str]:
    """Given credentials `UUID:KEY` (as `wskadmin user create -u` takes them): a lowercase
    UUID and a key of at least 64 letters and digits."""
    uuid_, sep, key = auth.partition(":")
    if not sep or not _UUID.fullmatch(uuid_) or not _KEY.fullmatch(key):
        raise InvalidInput(
            f"credentials must be UUID:KEY, a lowercase UUID and a key of {KEY_LENGTH} to 256 "
            "letters and digits"
        )
    return uuid_, key


async def ensure(
    session: AsyncSession,
    org_id: str | None,
    int_id: str | None,
    name: str | None = None,
    *,
    auth: tuple[str, str] | None = None,
) -> Namespace:
    """Return the namespace of (org_id, int_id), creating it first if needed (idempotent);
    with `auth` (uuid, key), one with exactly these credentials (409 if it exists with
    others, or they are another namespace's)."""
    if name is None:
        if org_id is None or int_id is None:
            raise InvalidInput("a namespace needs an org id and an integration id, or a name")
        name = namespace_name(org_id, int_id)
    else:
        check_segment(name, namespace=True)
    query = select(NamespaceRow).where(NamespaceRow.name == name)
    row = await session.scalar(query)
    if row is not None:
        found = _same_owner(row, org_id, int_id)
        if auth is not None and (found.uuid, found.key) != auth:
            raise Conflict(f"The namespace '{name}' exists with other credentials.")
        return found
    if auth is not None and await session.scalar(
        select(NamespaceRow.name).where(NamespaceRow.uuid == auth[0])
    ):
        raise Conflict("These credentials' UUID is another namespace's.")
    uuid_, key = auth or (str(uuid.uuid4()), new_key())
    row = NamespaceRow(
        name=name, org_id=org_id, int_id=int_id, uuid=uuid_, key=key, created=now_ms()
    )
    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:
        # Another request created it between our read and write: use theirs.
        if await session.scalar(query) is None:
            raise
        return await ensure(session, org_id, int_id, name, auth=auth)
    return _view(row)


async def set_option(
    session: AsyncSession, name: str, key: str, value: object
) -> dict[str, object]:
    """Set one option of a namespace (kept with its limits); returns them all."""
    row = await session.scalar(select(NamespaceRow).where(NamespaceRow.name == name))
    if row is None:
        raise NotFound(f"No namespace named '{name}'.")
    row.limits = {**(row.limits or {}), key: value}
    return dict(row.limits)


async def delete_namespace(session: AsyncSession, org_id: str, int_id: str) -> Namespace:
    """Delete the namespace and everything it owns (the foreign keys cascade)."""
    namespace = await get_by_ids(session, org_id, int_id)
    await session.execute(delete(NamespaceRow).where(NamespaceRow.id == namespace.id))
    await codestore.collect_garbage(session)
    return namespace


async def authenticate_basic(session: AsyncSession, uuid_: str, key: str) -> Namespace | None:
    """The namespace whose `uuid:key` these are, if any."""
    row = await session.scalar(select(NamespaceRow).where(NamespaceRow.uuid == uuid_))
    if row is None or not secrets.compare_digest(row.key, key):
        return None
    return _view(row)
