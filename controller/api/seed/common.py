"""Helpers shared by the org-scoped seed endpoints."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from controller.api.constraints import INT_ID, ORG_ID, ORG_INT_NOTE
from controller.api.endpoint import Param
from controller.api.http import read_json
from controller.api.seed.auth import authorize_org
from controller.api.state import app_state
from controller.domain import Namespace
from controller.errors import InvalidInput
from controller.services import namespaces


async def org_namespace(request: Request, session: AsyncSession) -> Namespace:
    """Authorise the caller for the path's org (401/403), then find the namespace (404)."""
    org_id, int_id = request.path_params["orgId"], request.path_params["intId"]
    await authorize_org(request, session, org_id)
    return await namespaces.get_by_ids(session, org_id, int_id)


async def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object, bounded by the request-size limit."""
    limit = app_state(request).settings.limits.request_body_max_bytes
    body = await read_json(request, limit, empty=None)
    if not isinstance(body, dict):
        raise InvalidInput("The request body must be a JSON object.")
    return body


ORG_PARAMS = (
    Param("orgId", "path", f"Organization ID; {ORG_INT_NOTE}", ORG_ID),
    Param("intId", "path", "Integration ID", INT_ID),
)
