"""Operator tokens and API keys: issued once, stored as sha256 digests, revocable."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from controller import messages
from controller.clock import now_ms
from controller.db.models import ApiKeyRow, OperatorTokenRow
from controller.domain import Credential, Principal, TokenScope
from controller.errors import InvalidInput, NotAuthenticated, NotFound

TOKEN_PREFIX = "hrt_"
API_KEY_PREFIX = "hrk_"
_SHOWN_PREFIX = 12


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def _token_view(row: OperatorTokenRow) -> Credential:
    return Credential(
        id=row.id,
        kind="token",
        prefix=row.prefix,
        scope=TokenScope(row.scope),
        org_id=row.org_id,
        description=row.description,
        created=row.created,
        revoked=row.revoked,
    )


def _key_view(row: ApiKeyRow) -> Credential:
    return Credential(
        id=row.id,
        kind="apikey",
        prefix=row.prefix,
        scope=None,
        org_id=None,
        description=row.description,
        created=row.created,
        revoked=row.revoked,
    )


async def create_token(
    session: AsyncSession,
    scope: TokenScope,
    org_id: str | None = None,
    description: str | None = None,
) -> tuple[Credential, str]:
    """Issue a token; returns its listing and the secret, which is never shown again."""
    if (scope is TokenScope.ORG) != bool(org_id):
        raise InvalidInput("an org token needs an org id; an admin token takes none")
    secret = _new_secret(TOKEN_PREFIX)
    row = OperatorTokenRow(
        token_hash=digest(secret),
        prefix=secret[:_SHOWN_PREFIX],
        scope=scope.value,
        org_id=org_id,
        description=description,
        created=now_ms(),
    )
    session.add(row)
    await session.flush()
    return _token_view(row), secret


async def list_tokens(session: AsyncSession) -> list[Credential]:
    rows = await session.scalars(select(OperatorTokenRow).order_by(OperatorTokenRow.id))
    return [_token_view(row) for row in rows]


async def revoke_token(session: AsyncSession, token_id: int) -> Credential:
    row = await session.get(OperatorTokenRow, token_id)
    if row is None:
        raise NotFound(f"no token with id {token_id}")
    if row.revoked is None:
        row.revoked = now_ms()
    return _token_view(row)


async def create_api_key(
    session: AsyncSession, description: str | None = None
) -> tuple[Credential, str]:
    secret = _new_secret(API_KEY_PREFIX)
    row = ApiKeyRow(
        key_hash=digest(secret),
        prefix=secret[:_SHOWN_PREFIX],
        description=description,
        created=now_ms(),
    )
    session.add(row)
    await session.flush()
    return _key_view(row), secret


async def list_api_keys(session: AsyncSession) -> list[Credential]:
    rows = await session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.id))
    return [_key_view(row) for row in rows]


async def revoke_api_key(session: AsyncSession, key_id: int) -> Credential:
    row = await session.get(ApiKeyRow, key_id)
    if row is None:
        raise NotFound(f"no API key with id {key_id}")
    if row.revoked is None:
        row.revoked = now_ms()
    return _key_view(row)


async def principal_of(session: AsyncSession, token: str | None) -> Principal:
    """The principal of an unrevoked bearer token; NotAuthenticated otherwise."""
    if not token:
        raise NotAuthenticated(messages.BEARER_REQUIRED)
    row = await session.scalar(
        select(OperatorTokenRow).where(
            OperatorTokenRow.token_hash == digest(token), OperatorTokenRow.revoked.is_(None)
        )
    )
    if row is None:
        raise NotAuthenticated(messages.AUTH_INVALID)
    return Principal(token_id=row.id, scope=TokenScope(row.scope), org_id=row.org_id)


async def authenticate(session: AsyncSession, token: str | None, api_key: str | None) -> Principal:
    """Check a bearer token and an API key together; raise NotAuthenticated if either fails."""
    if not token:
        raise NotAuthenticated(messages.BEARER_REQUIRED)
    if not api_key:
        raise NotAuthenticated(messages.API_KEY_REQUIRED)
    principal = await principal_of(session, token)
    key = await session.scalar(
        select(ApiKeyRow.id).where(
            ApiKeyRow.key_hash == digest(api_key), ApiKeyRow.revoked.is_(None)
        )
    )
    if key is None:
        raise NotAuthenticated(messages.API_KEY_INVALID)
    return principal
