"""`/runtime/system/actions`: the built-in actions of the system namespace."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from controller.api.endpoint import Endpoint
from controller.api.http import json_response
from controller.api.seed.auth import authenticate
from controller.api.seed.dto import ActionDTO, action_dto
from controller.api.state import app_state
from controller.names import SYSTEM_NAMESPACE
from controller.services import actions, namespaces


async def list_system_actions(request: Request) -> Response:
    state = app_state(request)
    async with state.transaction() as session:
        await authenticate(request, session)
        system = await namespaces.get_by_name(session, SYSTEM_NAMESPACE)
        found = [] if system is None else await actions.list_actions(session, system)
    found.sort(key=lambda a: a.qualified_name)
    return json_response([action_dto(a, state.settings.public_api_host) for a in found])


ENDPOINTS = (
    Endpoint("GET", "/runtime/system/actions", list_system_actions,
             "List the built-in actions", "system", response=ActionDTO,
             response_is_list=True, errors=(401,)),
)  # fmt: skip
