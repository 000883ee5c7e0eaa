"""`/api/v1/namespaces/{namespace}/rules[/{name}]`: rules, enabling and disabling them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, StrictBool, StrictStr
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from controller import messages
from controller.actionspec import key_values
from controller.api.constraints import ENTITY_PATH
from controller.api.endpoint import Endpoint, table
from controller.api.http import parse_model
from controller.api.openapi import ref
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
from controller.domain import kv_json
from controller.errors import InvalidInput
from controller.names import EntityPath
from controller.services import rules
from controller.services.rules import Rule, RuleSpec
from controller.services.triggers import ref_path

PREFIX = "/api/v1/namespaces/{namespace}/rules"


class EntityRefIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    path: StrictStr
    name: StrictStr


class RulePut(BaseModel):
    """`PUT /namespaces/{ns}/rules/{name}`: `trigger` and `action` are `/ns/[pkg/]name`
    strings or `{path, name}` objects; `_` is the rule's namespace."""

    model_config = ConfigDict(extra="ignore")
    trigger: StrictStr | EntityRefIn | None = None
    action: StrictStr | EntityRefIn | None = None
    annotations: list[KeyValueIn] | None = None
    version: StrictStr | None = None
    publish: StrictBool | None = None


def _reference(field: str, ref: str | EntityRefIn | None, namespace: str) -> EntityPath | None:
    if ref is None:
        return None
    text = ref if isinstance(ref, str) else f"/{ref.path}/{ref.name}"
    try:
        return EntityPath.parse(text, namespace)
    except InvalidInput:
        raise InvalidInput(
            messages.malformed(messages.rule_reference_invalid(field, text))
        ) from None


def rule_put(body: dict[str, Any], namespace: str) -> RuleSpec:
    put = parse_model(RulePut, body)
    annotations = key_values(put.annotations, keep_init=False)
    return RuleSpec(
        trigger=_reference("trigger", put.trigger, namespace),
        action=_reference("action", put.action, namespace),
        annotations=annotations,
        version=put.version,
        publish=put.publish,
    )


def _ref_json(path: EntityPath) -> dict[str, str]:
    return {"path": ref_path(path), "name": path.name}


def rule_json(rule: Rule) -> dict[str, Any]:
    """The rule; with its status unless it was not computed (list items)."""
    out: dict[str, Any] = {
        "namespace": rule.namespace,
        "name": rule.name,
        "version": rule.version,
        "publish": rule.publish,
        "annotations": kv_json(rule.annotations),
    }
    if rule.status is not None:
        out["status"] = rule.status.value
    out |= {
        "trigger": _ref_json(rule.trigger),
        "action": _ref_json(rule.action),
        "updated": rule.updated,
    }
    return out


async def list_rules(request: Request) -> Response:
    async with authenticated(request) as (session, caller):
        namespace = namespace_of(request, caller)
        require_own(namespace, caller, namespace)
        p = page(request, "rules")
        if p.count:
            return JSONResponse({"rules": await rules.count_rules(session, caller)})
        found = await rules.list_rules(session, caller, p.skip, p.limit)
    return JSONResponse([rule_json(r) for r in found])


async def get_rule(request: Request) -> Response:
    async with authenticated(request) as (session, caller):
        name = own_entity_name(request, caller)
        rule = await rules.get_rule(session, caller, name)
    return JSONResponse(rule_json(rule))


async def put_rule(request: Request) -> Response:
    state = app_state(request)
    async with authenticated(request) as (session, caller):
        name = own_entity_name(request, caller)
        overwrite = query_bool(request, "overwrite", False)
        body = await json_body(request, state.settings.limits.request_body_max_bytes)
        spec = rule_put(body, caller.name)
        rule = await rules.put_rule(
            session, caller, name, spec, state.settings.limits, overwrite=overwrite
        )
    return JSONResponse(rule_json(rule))


async def delete_rule(request: Request) -> Response:
    async with authenticated(request) as (session, caller):
        name = own_entity_name(request, caller)
        rule = await rules.delete_rule(session, caller, name)
    return JSONResponse(rule_json(rule))


async def change_status(request: Request) -> Response:
    """`{"status": "active" | "inactive"}`; OpenWhisk answers a bare 200 `OK`."""
    state = app_state(request)
    async with authenticated(request) as (session, caller):
        name = own_entity_name(request, caller)
        body = await json_body(request, state.settings.limits.request_body_max_bytes)
        await rules.set_status(session, caller, name, rules.parse_status(body.get("status")))
    return PlainTextResponse("OK")


TAG = "rules"
NAMED = (NAMESPACE, ENTITY)
_STATUS = {
    "type": "object",
    "required": ["status"],
    "properties": {"status": {"enum": ["active", "inactive"]}},
}
_REFERENCE = {
    "description": "An existing entity: `/ns/[pkg/]name` or `{path, name}`",
    "anyOf": [ENTITY_PATH, {"type": "object", "required": ["path", "name"]}],
}
_PUT_RULES = {"required": ["trigger", "action"], **put_rules(trigger=_REFERENCE, action=_REFERENCE)}
ENDPOINTS = (
    Endpoint("GET", PREFIX, list_rules, "List the namespace's rules (without status)", TAG,
             response=listing("Rule", "rules"), params=(NAMESPACE, *PAGING),
             errors=(400, 401, 403)),
    Endpoint("GET", PREFIX + "/{name:path}", get_rule, "Get a rule and its status", TAG,
             response=ref("Rule"), params=NAMED, errors=(400, 401, 403, 404)),
    Endpoint("PUT", PREFIX + "/{name:path}", put_rule,
             "Create a rule (active) between an existing trigger and action, or update it "
             "with `overwrite=true`", TAG, request=RulePut, request_rules=_PUT_RULES,
             response=ref("Rule"),
             params=(*NAMED, OVERWRITE), errors=(400, 401, 403, 404, 409, 413, 415)),
    Endpoint("DELETE", PREFIX + "/{name:path}", delete_rule, "Delete a rule", TAG,
             response=ref("Rule"), params=NAMED, errors=(400, 401, 403, 404)),
    Endpoint("POST", PREFIX + "/{name:path}", change_status, "Activate or deactivate a rule",
             TAG, request=_STATUS, response={"const": "OK"}, response_media_type="text/plain",
             params=NAMED, errors=(400, 401, 403, 404, 413, 415)),
)  # fmt: skip
TABLE = table(ENDPOINTS)
