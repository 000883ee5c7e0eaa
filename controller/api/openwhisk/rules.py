"""`/api/v1/namespaces/{namespace}/rules[/{name}]`: rules, enabling and disabling them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, StrictBool, StrictStr
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from controller import messages
from controller.api.endpoint import Handler
from controller.api.http import parse_model
from controller.api.openwhisk.common import (
    authenticate,
    json_body,
    namespace_of,
    own_entity_name,
    page,
    query_bool,
    require_own,
)
from controller.api.openwhisk.entities import KeyValueIn, kv_json
from controller.api.state import app_state
from controller.domain import KeyValue
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
    annotations = None
    if put.annotations is not None:
        annotations = tuple(KeyValue(kv.key, kv.value) for kv in put.annotations)
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
    async with app_state(request).transaction() as session:
        caller = await authenticate(request, session)
        namespace = namespace_of(request, caller)
        require_own(namespace, caller, namespace)
        p = page(request, "rules")
        if p.count:
            return JSONResponse({"rules": await rules.count_rules(session, caller)})
        found = await rules.list_rules(session, caller, p.skip, p.limit)
    return JSONResponse([rule_json(r) for r in found])


async def get_rule(request: Request) -> Response:
    async with app_state(request).transaction() as session:
        caller = await authenticate(request, session)
        name = own_entity_name(request, caller)
        rule = await rules.get_rule(session, caller, name)
    return JSONResponse(rule_json(rule))


async def put_rule(request: Request) -> Response:
    state = app_state(request)
    async with state.transaction() as session:
        caller = await authenticate(request, session)
        name = own_entity_name(request, caller)
        overwrite = query_bool(request, "overwrite", False)
        body = await json_body(request, state.settings.limits.request_body_max_bytes)
        spec = rule_put(body, caller.name)
        rule = await rules.put_rule(
            session, caller, name, spec, state.settings.limits, overwrite=overwrite
        )
    return JSONResponse(rule_json(rule))


async def delete_rule(request: Request) -> Response:
    async with app_state(request).transaction() as session:
        caller = await authenticate(request, session)
        name = own_entity_name(request, caller)
        rule = await rules.delete_rule(session, caller, name)
    return JSONResponse(rule_json(rule))


async def change_status(request: Request) -> Response:
    """`{"status": "active" | "inactive"}`; OpenWhisk answers a bare 200 `OK`."""
    state = app_state(request)
    async with state.transaction() as session:
        caller = await authenticate(request, session)
        name = own_entity_name(request, caller)
        body = await json_body(request, state.settings.limits.request_body_max_bytes)
        await rules.set_status(session, caller, name, rules.parse_status(body.get("status")))
    return PlainTextResponse("OK")


TABLE: list[tuple[str, str, Handler]] = [
    ("GET", PREFIX, list_rules),
    ("GET", PREFIX + "/{name:path}", get_rule),
    ("PUT", PREFIX + "/{name:path}", put_rule),
    ("DELETE", PREFIX + "/{name:path}", delete_rule),
    ("POST", PREFIX + "/{name:path}", change_status),
]
