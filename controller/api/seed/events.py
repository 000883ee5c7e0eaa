"""Event registrations: `handleEventRegistration`, `handleEventUpdate`, `handleEventStatus`,
`handleEventDeletion`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from controller.api.endpoint import Endpoint, Param
from controller.api.http import json_response, parse_model
from controller.api.seed.common import ORG_PARAMS, json_object, org_namespace
from controller.api.seed.dto import (
    INTEGRATION_STATUS,
    EventDTO,
    event_dto,
    event_register_rules,
    event_update_rules,
    registration_spec,
)
from controller.api.state import app_state
from controller.services import events

BASE = "/runtime/namespaces/{orgId}/{intId}"
REGISTER = BASE + "/handleEventRegistration"
DELETE = BASE + "/handleEventDeletion/{clientId}/{registrationId}"
UPDATE = BASE + "/handleEventUpdate/{clientId}/{registrationId}"
STATUS = BASE + "/handleEventStatus/{clientId}/{registrationId}/{status}"


def _ams_ids(request: Request) -> tuple[str | None, str | None]:
    return request.headers.get("x-ams-consumer-id"), request.headers.get("x-ams-application-id")


async def register(request: Request) -> Response:
    async with app_state(request).transaction() as session:
        namespace = await org_namespace(request, session)
        dto = parse_model(EventDTO, await json_object(request))
        spec = registration_spec(dto, *_ams_ids(request))
        registration = await events.register(session, namespace, spec)
    return json_response(event_dto(registration))


async def update(request: Request) -> Response:
    params = request.path_params
    async with app_state(request).transaction() as session:
        namespace = await org_namespace(request, session)
        dto = parse_model(EventDTO, await json_object(request))
        spec = registration_spec(dto, *_ams_ids(request))
        registration = await events.update(
            session, namespace, params["clientId"], params["registrationId"], spec
        )
    return json_response(event_dto(registration))


async def set_status(request: Request) -> Response:
    params = request.path_params
    async with app_state(request).transaction() as session:
        namespace = await org_namespace(request, session)
        registration = await events.set_status(
            session, namespace, params["clientId"], params["registrationId"], params["status"]
        )
    return json_response(event_dto(registration))


async def delete(request: Request) -> Response:
    params = request.path_params
    async with app_state(request).transaction() as session:
        namespace = await org_namespace(request, session)
        registration = await events.delete(
            session, namespace, params["clientId"], params["registrationId"]
        )
    return json_response(event_dto(registration))


TAG = "events"
AMS = (
    Param("X-Ams-Consumer-Id", "header", "AMS consumer ID"),
    Param("X-Ams-Application-Id", "header", "AMS application ID"),
)
REGISTRATION = (
    *ORG_PARAMS,
    Param("clientId", "path", "IMS client ID"),
    Param("registrationId", "path", "ID of registration"),
    *AMS,
)
STATUS_PARAM = Param("status", "path", "enabled or disabled, in any case", INTEGRATION_STATUS)
ENDPOINTS = (
    Endpoint("POST", REGISTER, register,
             "Register an event registration that runs an action of this namespace", TAG,
             request=EventDTO, request_rules=event_register_rules, response=EventDTO,
             params=(*ORG_PARAMS, *AMS), errors=(400, 401, 403, 404, 409, 413, 415)),
    Endpoint("PUT", UPDATE, update, "Update an event registration", TAG, request=EventDTO,
             request_rules=event_update_rules, response=EventDTO, params=REGISTRATION,
             errors=(400, 401, 403, 404, 413, 415)),
    Endpoint("POST", STATUS, set_status,
             "Enable or disable an event registration ({status}: enabled or disabled)", TAG,
             response=EventDTO, params=(*REGISTRATION, STATUS_PARAM),
             errors=(400, 401, 403, 404)),
    Endpoint("DELETE", DELETE, delete, "Delete an event registration", TAG,
             response=EventDTO, params=REGISTRATION, errors=(401, 403, 404)),
)  # fmt: skip
