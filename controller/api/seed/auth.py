"""Seed-API authentication (Bearer token + X-Api-Key) and authorisation by scope."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from controller import messages
from controller.domain import Principal
from controller.errors import NotAuthorized
from controller.services import credentials


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def authenticate(request: Request, session: AsyncSession) -> Principal:
    """401 unless both the bearer token and the API key are valid and unrevoked."""
    return await credentials.authenticate(
        session, bearer_token(request), request.headers.get("x-api-key")
    )


async def authorize_org(request: Request, session: AsyncSession, org_id: str) -> Principal:
    """403 unless the caller's token reaches `org_id` (admin tokens reach every org)."""
    principal = await authenticate(request, session)
    if not principal.can_access_org(org_id):
        raise NotAuthorized(messages.not_authorized(org_id))
    return principal


async def authorize_admin(request: Request, session: AsyncSession) -> Principal:
    principal = await authenticate(request, session)
    if not principal.is_admin:
        raise NotAuthorized(messages.ADMIN_REQUIRED)
    return principal
