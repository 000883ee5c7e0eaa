"""The seed API's DTOs, with the reference's field names exactly, and their mapping to and
from the domain model."""

from __future__ import annotations

import re
from typing import Annotated, Any, cast

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, JsonValue, StrictBool, StrictStr

from controller import messages
from controller.actionspec import ActionSpec, ExecSpec, LimitsSpec, key_values
from controller.api.constraints import ACTION_NAME, ENTITY_PATH, Constraints, Schema, any_case
from controller.domain import (
    Action,
    EventOfInterest,
    EventRegistration,
    Namespace,
    kv_json,
)
from controller.services.activations import Activation
from controller.services.events import RegistrationSpec

_STRICT = ConfigDict(extra="forbid", populate_by_name=True)
_DIGITS = re.compile("[0-9]+")


def _whole_number(what: str) -> BeforeValidator:
    def parse(value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, bool):
            raise ValueError(messages.limit_not_whole(what))
        if isinstance(value, int):
            return value
        if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
            return int(value)
        raise ValueError(messages.limit_not_whole(what))

    return BeforeValidator(parse)


class NamespaceDTO(BaseModel):
    """Namespace details: its name and its OpenWhisk `uuid:key` credentials."""

    name: str
    auth: str


class KeyValuePairDTO(BaseModel):
    """A parameter or an annotation. `init: true` (an extension, as `aio rt action create
    --env` sets it) makes a parameter an environment variable of the action instead."""

    model_config = _STRICT
    key: StrictStr = Field(min_length=1)
    value: JsonValue = None
    init: StrictBool = False


def _limit_schema(schema: dict[str, Any]) -> None:
    """Limits are strings in responses; requests may send strings or integers."""
    schema.clear()
    schema["anyOf"] = [
        {"type": "string", "pattern": "^[0-9]+$"},
        {"type": "integer"},
        {"type": "null"},
    ]


_LIMIT = cast(Any, _limit_schema)


class LimitsDTO(BaseModel):
    """Action limits; strings on output, strings or integers accepted on input."""

    model_config = _STRICT
    timeout: Annotated[int | None, _whole_number("time")] = Field(None, json_schema_extra=_LIMIT)
    memory: Annotated[int | None, _whole_number("memory")] = Field(None, json_schema_extra=_LIMIT)
    logs: Annotated[int | None, _whole_number("log")] = Field(None, json_schema_extra=_LIMIT)


class ExecDTO(BaseModel):
    """What the action runs. `binary` is inferred from the code on write, as OpenWhisk does;
    `main` (an extension) names the entry function."""

    model_config = _STRICT
    kind: StrictStr | None = None
    binary: StrictBool = False
    components: list[StrictStr] | None = None
    main: StrictStr | None = None


class ActionDTO(BaseModel):
    """An action. On write, `namespace`, `version` and `url` are set by the server and ignored."""

    model_config = _STRICT
    name: StrictStr | None = None
    code: StrictStr | None = None
    namespace: StrictStr | None = None
    version: StrictStr | None = None
    params: list[KeyValuePairDTO] | None = None
    annotations: list[KeyValuePairDTO] | None = None
    limits: LimitsDTO | None = None
    exec_: ExecDTO | None = Field(None, alias="exec")
    url: StrictStr | None = None


class ActionResultDTO(BaseModel):
    """The outcome of executing an action."""

    name: str
    namespace: str
    activationId: str
    annotations: list[KeyValuePairDTO]
    duration: int
    version: str
    response: dict[str, JsonValue]


class EventsOfInterestDTO(BaseModel):
    model_config = _STRICT
    event_code: StrictStr | None = None
    provider: StrictStr | None = None


class EventDTO(BaseModel):
    """An Adobe I/O Events registration whose events run `runtime_action`."""

    model_config = _STRICT
    id: StrictStr | None = None
    name: StrictStr | None = None
    description: StrictStr | None = None
    client_id: StrictStr | None = None
    type: StrictStr | None = None
    integration_status: StrictStr | None = None
    delivery_type: StrictStr | None = None
    webhook_url: StrictStr | None = None
    events_of_interest: list[EventsOfInterestDTO] | None = None
    runtime_action: StrictStr | None = None
    registration_id: StrictStr | None = None


class ErrorDTO(BaseModel):
    """Every error: a message and the request id (also sent as `X-Request-ID`)."""

    error: str
    code: str


# Mapping between DTOs and the domain.


def namespace_dto(namespace: Namespace) -> dict[str, Any]:
    return {"name": namespace.name, "auth": namespace.auth}


def action_spec(dto: ActionDTO) -> ActionSpec:
    exec_spec = None
    if dto.exec_ is not None or dto.code is not None:
        exec_dto = dto.exec_ or ExecDTO()
        exec_spec = ExecSpec(
            kind=exec_dto.kind,
            code=dto.code,
            main=exec_dto.main,
            components=None if exec_dto.components is None else tuple(exec_dto.components),
        )
    limits = None
    if dto.limits is not None:
        limits = LimitsSpec(
            timeout=dto.limits.timeout, memory=dto.limits.memory, logs=dto.limits.logs
        )
    return ActionSpec(
        exec=exec_spec,
        parameters=key_values(dto.params),
        annotations=key_values(dto.annotations),
        limits=limits,
    )


def action_url(api_host: str, action: Action) -> str:
    return f"{api_host}/api/v1/namespaces/{action.namespace}/actions/{action.qualified_name}"


def action_dto(action: Action, api_host: str) -> dict[str, Any]:
    exec_: dict[str, Any] = {"kind": action.exec.kind, "binary": action.exec.binary}
    if action.exec.components:
        exec_["components"] = list(action.exec.components)
    if action.exec.main:
        exec_["main"] = action.exec.main
    out: dict[str, Any] = {"name": action.qualified_name}
    if action.exec.code is not None:
        out["code"] = action.exec.code
    out.update(
        namespace=action.namespace,
        version=action.version,
        params=kv_json(action.parameters),
        annotations=[{"key": kv.key, "value": kv.value} for kv in action.annotations],
        limits={
            "timeout": str(action.limits.timeout),
            "memory": str(action.limits.memory),
            "logs": str(action.limits.logs),
        },
        exec=exec_,
        url=action_url(api_host, action),
    )
    return out


def registration_spec(
    dto: EventDTO, consumer_id: str | None, application_id: str | None
) -> RegistrationSpec:
    events = None
    if dto.events_of_interest is not None:
        events = tuple(
            EventOfInterest(e.event_code or "", e.provider or "") for e in dto.events_of_interest
        )
    return RegistrationSpec(
        id=dto.id,
        name=dto.name,
        description=dto.description,
        client_id=dto.client_id,
        type=dto.type,
        integration_status=dto.integration_status,
        delivery_type=dto.delivery_type,
        webhook_url=dto.webhook_url,
        events_of_interest=events,
        runtime_action=dto.runtime_action,
        registration_id=dto.registration_id,
        consumer_id=consumer_id,
        application_id=application_id,
    )


def event_dto(reg: EventRegistration) -> dict[str, Any]:
    return {
        "id": reg.id,
        "name": reg.name,
        "description": reg.description,
        "client_id": reg.client_id,
        "type": reg.type,
        "integration_status": reg.integration_status.value,
        "delivery_type": reg.delivery_type,
        "webhook_url": reg.webhook_url,
        "events_of_interest": [
            {"event_code": e.event_code, "provider": e.provider} for e in reg.events_of_interest
        ],
        "runtime_action": reg.runtime_action,
        "registration_id": reg.registration_id,
    }


def action_result_dto(action: Action, activation: Activation) -> dict[str, Any]:
    """ActionResultDTO: the activation of an executed action."""
    response = {
        k: v for k, v in activation.response.items() if k in ("status", "success", "result")
    }
    return {
        "name": action.qualified_name,
        "namespace": activation.namespace,
        "activationId": activation.activation_id,
        "annotations": activation.annotations,
        "duration": activation.duration,
        "version": activation.version,
        "response": response,
    }


# What the server enforces on the DTOs beyond their models, for the OpenAPI document.

_NULL: Schema = {"type": "null"}
_NON_EMPTY: Schema = {"type": "string", "minLength": 1}
INTEGRATION_STATUS = any_case("enabled", "disabled")


def _limits_rules(c: Constraints) -> Schema:
    fields = {name: c.action_limit(name, as_string=True) for name in ("timeout", "memory", "logs")}
    return {"anyOf": [_NULL, {"type": "object", "properties": fields}]}


def _code_action(c: Constraints, *, creating: bool) -> Schema:
    """Code and a code kind; on update the kind may be left out (it is kept)."""
    kind: Schema = {"enum": c.code_kinds()}
    exec_: Schema = {
        "type": "object",
        "properties": {
            "kind": kind if creating else {"anyOf": [_NULL, kind]},
            "components": {"anyOf": [_NULL, {"type": "array", "maxItems": 0}]},
        },
    }
    if creating:
        exec_["required"] = ["kind"]
    else:
        exec_ = {"anyOf": [_NULL, exec_]}
    return {"required": ["code"], "properties": {"code": _NON_EMPTY, "exec": exec_}}


def _sequence(c: Constraints) -> Schema:
    components = {
        "type": "array",
        "minItems": 1,
        "maxItems": c.limits.sequence_max_length,
        "items": ENTITY_PATH,
        "description": "Existing actions the caller may invoke, not the sequence itself",
    }
    return {
        "required": ["exec"],
        "properties": {
            "code": {"anyOf": [_NULL, {"const": ""}]},
            "exec": {
                "type": "object",
                "required": ["kind", "components"],
                "properties": {"kind": {"const": c.sequence_kind()}, "components": components},
            },
        },
    }


def action_create_rules(c: Constraints) -> Schema:
    """A named action with code of a supported kind, or a sequence of existing actions."""
    return {
        "required": ["name", "exec"],
        "properties": {"name": ACTION_NAME, "limits": _limits_rules(c)},
        "anyOf": [_code_action(c, creating=True), _sequence(c)],
    }


def action_update_rules(c: Constraints) -> Schema:
    """`name`, if given, is the path's. New code or exec replaces the exec: then as on
    create, except that a missing kind keeps the action's."""
    name = {**ACTION_NAME, "description": "If given, the name in the path"}
    changes_exec = {
        "anyOf": [
            {"required": ["exec"], "properties": {"exec": {"type": "object"}}},
            {"required": ["code"], "properties": {"code": {"type": "string"}}},
        ]
    }
    return {
        "properties": {"name": {"anyOf": [_NULL, name]}, "limits": _limits_rules(c)},
        "if": changes_exec,
        "then": {"anyOf": [_code_action(c, creating=False), _sequence(c)]},
    }


def _events_of_interest() -> Schema:
    event = {
        "type": "object",
        "required": ["event_code", "provider"],
        "properties": {"event_code": _NON_EMPTY, "provider": _NON_EMPTY},
    }
    return {"type": "array", "minItems": 1, "items": event}


_RUNTIME_ACTION: Schema = {
    **ENTITY_PATH,
    "description": "An existing action of this namespace (`name`, `pkg/name` or `/ns/...`)",
}


def event_register_rules(c: Constraints) -> Schema:
    return {
        "required": ["name", "client_id", "runtime_action", "events_of_interest"],
        "properties": {
            "name": _NON_EMPTY,
            "client_id": _NON_EMPTY,
            "runtime_action": _RUNTIME_ACTION,
            "events_of_interest": _events_of_interest(),
            "integration_status": {"anyOf": [_NULL, INTEGRATION_STATUS]},
        },
    }


def event_update_rules(c: Constraints) -> Schema:
    """Given fields replace; `client_id` and `registration_id`, if given, are the path's."""
    in_path = {"type": "string", "description": "If given, the one in the path"}
    return {
        "properties": {
            "name": {"anyOf": [_NULL, _NON_EMPTY]},
            "client_id": {"anyOf": [_NULL, in_path]},
            "registration_id": {"anyOf": [_NULL, in_path]},
            "runtime_action": {"anyOf": [_NULL, _RUNTIME_ACTION]},
            "events_of_interest": {"anyOf": [_NULL, _events_of_interest()]},
            "integration_status": {"anyOf": [_NULL, INTEGRATION_STATUS]},
        },
    }
