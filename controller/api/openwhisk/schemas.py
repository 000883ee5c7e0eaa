"""The OpenWhisk API's JSON (shared/spec/openwhisk.md §3) and its parameters, as JSON Schema
for the OpenAPI document; the endpoint tables of the resource modules refer to them."""

from __future__ import annotations

from controller.api.constraints import ACTION_NAME, ENTITY_NAME, VERSION, Constraints, Schema
from controller.api.endpoint import Param
from controller.api.openapi import Surface, ref
from controller.api.openwhisk.common import INT_MAX

_KEY_VALUES: Schema = {"type": "array", "items": ref("KeyValue")}
_STRING: Schema = {"type": "string"}
_INTEGER: Schema = {"type": "integer"}
_BOOLEAN: Schema = {"type": "boolean"}
_ENTITY_REF: Schema = {
    "type": "object",
    "required": ["path", "name"],
    "properties": {"path": _STRING, "name": _STRING},
}
_BINDING: Schema = {
    "type": "object",
    "required": ["namespace", "name"],
    "properties": {"namespace": _STRING, "name": _STRING},
}


def _entity(required: list[str], **properties: Schema) -> Schema:
    common = {
        "namespace": _STRING,
        "name": _STRING,
        "version": _STRING,
        "publish": _BOOLEAN,
        "annotations": _KEY_VALUES,
        "updated": _INTEGER,
    }
    return {
        "type": "object",
        "required": ["namespace", "name", "version", "publish", *required],
        "properties": {**common, **properties},
    }


_LIMITS: Schema = {
    "type": "object",
    "properties": dict.fromkeys(("timeout", "memory", "logs", "concurrency"), _INTEGER),
}
_ACTIVATION_RESPONSE: Schema = {
    "type": "object",
    "required": ["status", "success", "result"],
    "properties": {
        "status": {"enum": ["success", "application error", "action developer error",
                            "whisk internal error"]},
        "success": _BOOLEAN,
        "result": {"anyOf": [{"type": "object"}, {"type": "array"}]},
        "size": _INTEGER,
    },
}  # fmt: skip
_ACTIVATION_FIELDS: dict[str, Schema] = {
    "activationId": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
    "start": _INTEGER,
    "end": _INTEGER,
    "duration": _INTEGER,
    "cause": _STRING,
    "annotations": {"type": "array"},
}

COMPONENTS: dict[str, Schema] = {
    "KeyValue": {
        "type": "object",
        "required": ["key", "value"],
        "properties": {"key": _STRING, "value": {}, "init": _BOOLEAN},
    },
    "Action": _entity(
        ["exec", "parameters", "limits", "annotations"],
        exec={"type": "object", "required": ["kind"], "properties": {
            "kind": _STRING, "code": _STRING, "binary": _BOOLEAN, "main": _STRING,
            "image": _STRING, "components": {"type": "array", "items": _STRING}}},
        parameters=_KEY_VALUES,
        limits=_LIMITS,
    ),
    "ActionSummary": _entity(
        ["exec", "limits", "annotations"],
        exec={"type": "object", "properties": {"binary": _BOOLEAN}},
        limits=_LIMITS,
    ),
    "Package": _entity(
        ["binding", "parameters", "annotations"],
        binding={"anyOf": [_BINDING, {"type": "object", "maxProperties": 0}]},
        parameters=_KEY_VALUES,
    ),
    "PackageView": _entity(
        ["binding", "parameters", "annotations", "actions", "feeds"],
        binding={"anyOf": [_BINDING, {"type": "object", "maxProperties": 0}]},
        parameters=_KEY_VALUES,
        actions={"type": "array", "items": {"type": "object"}},
        feeds={"type": "array", "items": {"type": "object"}},
    ),
    "PackageSummary": _entity(
        ["binding", "annotations"], binding={"anyOf": [_BINDING, {"const": False}]}
    ),
    "Trigger": _entity(
        ["parameters", "limits", "annotations"],
        parameters=_KEY_VALUES,
        limits={"type": "object"},
        rules={"type": "object", "additionalProperties": {"type": "object", "properties": {
            "action": _ENTITY_REF, "status": {"enum": ["active", "inactive"]}}}},
    ),
    "TriggerSummary": _entity(["annotations"]),
    "Rule": _entity(
        ["trigger", "action", "annotations"],
        status={"enum": ["active", "inactive"]},
        trigger=_ENTITY_REF,
        action=_ENTITY_REF,
    ),
    "Activation": _entity(
        ["activationId", "start", "response", "logs", "annotations"],
        subject=_STRING,
        response=_ACTIVATION_RESPONSE,
        logs={"type": "array", "items": _STRING},
        **_ACTIVATION_FIELDS,
    ),
    "ActivationSummary": _entity(
        ["activationId", "start", "annotations"],
        statusCode={"enum": [0, 1, 2, 3]},
        **_ACTIVATION_FIELDS,
    ),
    "ActivationResponse": _ACTIVATION_RESPONSE,
    "ActivationId": {
        "type": "object",
        "required": ["activationId"],
        "properties": {"activationId": _STRING},
    },
}  # fmt: skip

SURFACE = Surface(
    description=(
        "The OpenWhisk REST API, as implemented by Homerun: HTTP Basic `uuid:key` under "
        "/api/v1, and the same routes under /runtime/api/v1 with an operator bearer token. "
        "Every error is `{error, code}`, `code` being the request id (also `X-Request-ID`)."
    ),
    security_schemes={"basic": {"type": "http", "scheme": "basic"}},
    security=[{"basic": []}],
    components=COMPONENTS,
)

NAMESPACE = Param("namespace", "path", "A namespace, or `_` for the caller's own", ENTITY_NAME)
ENTITY = Param("name", "path", "An entity name", ENTITY_NAME)
PACKAGED = Param("name", "path", "An action name: `name` or `package/name`", ACTION_NAME)
OVERWRITE = Param("overwrite", "query", "Update the entity if it exists", _BOOLEAN)


def _list_limit(c: Constraints) -> Schema:
    return c.list_limit()


PAGING = (
    Param("skip", "query", "Skip this many first", {**_INTEGER, "minimum": 0, "maximum": INT_MAX}),
    Param("limit", "query", "At most this many (0: the maximum)", _list_limit),
    Param("count", "query", "Answer `{<collection>: N}` instead of the list", _BOOLEAN),
)


def listing(component: str, collection: str) -> Schema:
    """A list page, or its count with `count=true` (both answer 200)."""
    return {
        "anyOf": [
            {"type": "array", "items": ref(component)},
            {"type": "object", "required": [collection], "properties": {collection: _INTEGER}},
        ]
    }


def put_rules(**properties: Schema) -> Schema:
    """What the server enforces on a PUT body beyond its model: a semantic `version`."""
    return {"properties": {"version": {"anyOf": [{"type": "null"}, VERSION]}, **properties}}
