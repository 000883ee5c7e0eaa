"""`/runtime/admin/namespaces/{orgId}/{intId}`: namespace administration (admin tokens)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from controller.api.endpoint import Endpoint
from controller.api.http import json_response
from controller.api.seed.auth import authorize_admin
from controller.api.seed.common import ORG_PARAMS
from controller.api.seed.dto import NamespaceDTO, namespace_dto
from controller.api.state import app_state
from controller.services import namespaces

PATH = "/runtime/admin/namespaces/{orgId}/{intId}"


async def get_namespace(request: Request) -> Response:
    async with app_state(request).transaction() as session:
        await authorize_admin(request, session)
        ids = request.path_params
        namespace = await namespaces.get_by_ids(session, ids["orgId"], ids["intId"])
    return json_response(namespace_dto(namespace))


async def create_namespace(request: Request) -> Response:
    async with app_state(request).transaction() as session:
        await authorize_admin(request, session)
        ids = request.path_params
        namespace = await namespaces.ensure(session, ids["orgId"], ids["intId"])
    return json_response(namespace_dto(namespace))


async def delete_namespace(request: Request) -> Response:
    async with app_state(request).transaction() as session:
        await authorize_admin(request, session)
        ids = request.path_params
        namespace = await namespaces.delete_namespace(session, ids["orgId"], ids["intId"])
    return json_response(namespace_dto(namespace))


TAG = "namespaces"
ENDPOINTS = (
    Endpoint("GET", PATH, get_namespace, "Get the namespace of an organization and integration",
             TAG, response=NamespaceDTO, params=ORG_PARAMS, errors=(401, 403, 404)),
    Endpoint("POST", PATH, create_namespace,
             "Create the namespace (idempotent: returns the existing one if present)",
             TAG, response=NamespaceDTO, params=ORG_PARAMS, errors=(400, 401, 403, 409)),
    Endpoint("DELETE", PATH, delete_namespace,
             "Delete the namespace and everything it owns", TAG, response=NamespaceDTO,
             params=ORG_PARAMS, errors=(401, 403, 404)),
)  # fmt: skip
