"""`/api/v1/namespaces/{namespace}/triggers[/{name}]`: triggers, and firing them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, JsonValue, StrictBool, StrictStr
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from controller.actionspec import key_values
from controller.api.endpoint import Endpoint, Reply, table
from controller.api.errors import request_id
from controller.api.http import parse_model
from controller.api.openapi import ref
from controller.api.openwhisk.actions import ACTIVATION_HEADER
from controller.api.openwhisk.common import (
    authenticated,
    json_body,
    namespace_of,
    own_entity_name,
    page,
    query_bool,
    require_own,
)
from controller.api.openwhisk.entities import KeyValueIn
from controller.api.openwhisk.schemas import (
    ENTITY,
    NAMESPACE,
    OVERWRITE,
    PAGING,
    listing,
    put_rules,
)
from controller.api.state import app_state
from controller.clock import now_ms
from controller.domain import kv_json
from controller.execution.fire import fire
from controller.services import triggers
from controller.services.triggers import Trigger, TriggerSpec, ref_path

PREFIX = "/api/v1/namespaces/{namespace}/triggers"


class TriggerPut(BaseModel):
    """`PUT /namespaces/{ns}/triggers/{name}`: `namespace` and `name` come from the URL."""

    model_config = ConfigDict(extra="ignore")
    parameters: list[KeyValueIn] | None = None
    annotations: list[KeyValueIn] | None = None
    limits: dict[str, JsonValue] | None = None  # accepted; triggers have no limits
    version: StrictStr | None = None
    publish: StrictBool | None = None


def trigger_put(body: dict[str, Any]) -> TriggerSpec:
    put = parse_model(TriggerPut, body)
    return TriggerSpec(
        key_values(put.parameters, keep_init=False),
        key_values(put.annotations, keep_init=False),
        put.version,
        put.publish,
    )


def trigger_json(trigger: Trigger) -> dict[str, Any]:
    out: dict[str, Any] = {
        "namespace": trigger.namespace,
        "name": trigger.name,
        "version": trigger.version,
        "publish": trigger.publish,
        "parameters": kv_json(trigger.parameters),
        "limits": {},
        "annotations": kv_json(trigger.annotations),
        "updated": trigger.updated,
    }
    if trigger.rules is not None:
        out["rules"] = {
            key: {
                "action": {"path": ref_path(link.action), "name": link.action.name},
                "status": link.status.value,
            }
            for key, link in trigger.rules.items()
        }
    return out


def trigger_summary(trigger: Trigger) -> dict[str, Any]:
    return {
        "namespace": trigger.namespace,
        "name": trigger.name,
        "version": trigger.version,
        "publish": trigger.publish,
        "annotations": kv_json(trigger.annotations),
        "updated": trigger.updated,
    }


async def list_triggers(request: Request) -> Response:
    async with authenticated(request) as (session, caller):
        namespace = namespace_of(request, caller)
        require_own(namespace, caller, namespace)
        p = page(request, "triggers")
        if p.count:
            return JSONResponse({"triggers": await triggers.count_triggers(session, caller)})
        found = await triggers.list_triggers(session, caller, p.skip, p.limit)
    return JSONResponse([trigger_summary(t) for t in found])


async def get_trigger(request: Request) -> Response:
    async with authenticated(request) as (session, caller):
        name = own_entity_name(request, caller)
        trigger = await triggers.get_trigger(session, caller, name)
    return JSONResponse(trigger_json(trigger))


async def put_trigger(request: Request) -> Response:
    state = app_state(request)
    async with authenticated(request) as (session, caller):
        name = own_entity_name(request, caller)
        overwrite = query_bool(request, "overwrite", False)
        spec = trigger_put(await json_body(request, state.settings.limits.request_body_max_bytes))
        trigger = await triggers.put_trigger(
            session, caller, name, spec, state.settings.limits, overwrite=overwrite
        )
    return JSONResponse(trigger_json(trigger))


async def delete_trigger(request: Request) -> Response:
    async with authenticated(request) as (session, caller):
        name = own_entity_name(request, caller)
        trigger = await triggers.delete_trigger(session, caller, name)
    return JSONResponse(trigger_json(trigger))


async def fire_trigger(request: Request) -> Response:
    """202 with the trigger activation's id once each active rule's action is invoked; 204
    (and no activation) when no rule is active."""
    state = app_state(request)
    async with authenticated(request) as (session, caller):
        name = own_entity_name(request, caller)
        payload = await json_body(request, state.settings.limits.payload_max_bytes)
        plan = await triggers.plan_fire(session, caller, name)
    if not plan.firings:
        return Response(status_code=204)
    entry = state.require_entry()
    limits = state.settings.limits
    await entry.executor.throttle.check_rate(caller.name, limits.fires_per_minute, now_ms(), "fire")
    headers = {key.lower(): value for key, value in request.headers.items()}
    headers.pop("authorization", None)  # credentials stay with the platform
    activation_id = await fire(
        plan, payload, entry, state.transaction, request_id(request), headers
    )
    headers = {ACTIVATION_HEADER: activation_id}
    return JSONResponse({"activationId": activation_id}, 202, headers=headers)


TAG = "triggers"
NAMED = (NAMESPACE, ENTITY)
ENDPOINTS = (
    Endpoint("GET", PREFIX, list_triggers, "List the namespace's triggers", TAG,
             response=listing("TriggerSummary", "triggers"), params=(NAMESPACE, *PAGING),
             errors=(400, 401, 403)),
    Endpoint("GET", PREFIX + "/{name:path}", get_trigger, "Get a trigger", TAG,
             response=ref("Trigger"), params=NAMED, errors=(400, 401, 403, 404)),
    Endpoint("PUT", PREFIX + "/{name:path}", put_trigger,
             "Create a trigger, or update it with `overwrite=true`", TAG, body_optional=True,
             request=TriggerPut, request_rules=put_rules(),
             response=ref("Trigger"), params=(*NAMED, OVERWRITE),
             errors=(400, 401, 403, 409, 413, 415)),
    Endpoint("DELETE", PREFIX + "/{name:path}", delete_trigger, "Delete a trigger", TAG,
             response=ref("Trigger"), params=NAMED, errors=(400, 401, 403, 404)),
    Endpoint("POST", PREFIX + "/{name:path}", fire_trigger,
             "Fire a trigger with the body as its payload", TAG, body_optional=True,
             request={"type": "object"},
             status=202, response=ref("ActivationId"), params=NAMED,
             replies=(Reply(204, "No rule of the trigger is active: nothing ran"),),
             errors=(400, 401, 403, 404, 413, 415, 429, 503)),
)  # fmt: skip
TABLE = table(ENDPOINTS)
