"""OpenWhisk's JSON for actions and activations (shared/spec/openwhisk.md §3), and the action
PUT body, mapped to and from the domain."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    StrictBool,
    StrictStr,
)

from controller import messages
from controller.actionspec import ActionSpec, ExecSpec, LimitsSpec, key_values
from controller.api.http import parse_model
from controller.domain import Action, kv_json
from controller.errors import InvalidInput
from controller.services.activations import Activation

_LOOSE = ConfigDict(extra="ignore")  # OpenWhisk ignores unknown fields of PUT bodies


class KeyValueIn(BaseModel):
    model_config = _LOOSE
    key: StrictStr = Field(min_length=1)
    value: JsonValue = None
    init: StrictBool = False


class ExecIn(BaseModel):
    model_config = _LOOSE
    kind: StrictStr | None = None
    code: StrictStr | None = None
    main: JsonValue = None  # checked below, with OpenWhisk's message
    image: StrictStr | None = None
    components: list[StrictStr] | None = None


def _whole(what: str) -> BeforeValidator:
    def check(value: Any) -> Any:
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        raise ValueError(messages.limit_not_whole(what))

    return BeforeValidator(check)


class LimitsIn(BaseModel):
    model_config = _LOOSE
    timeout: Annotated[int | None, _whole("time")] = None
    memory: Annotated[int | None, _whole("memory")] = None
    logs: Annotated[int | None, _whole("log")] = None
    concurrency: Annotated[int | None, _whole("concurrency")] = None


class ActionPut(BaseModel):
    """`PUT /namespaces/{ns}/actions/{name}`: `namespace` and `name` come from the URL."""

    model_config = _LOOSE
    exec: ExecIn | None = None
    parameters: list[KeyValueIn] | None = None
    annotations: list[KeyValueIn] | None = None
    limits: LimitsIn | None = None
    version: StrictStr | None = None
    publish: StrictBool | None = None
    delAnnotations: list[StrictStr] | None = None


def action_put(body: dict[str, Any]) -> tuple[ActionSpec, tuple[str, ...]]:
    """The spec of a PUT body, and the annotation keys to delete first."""
    put = parse_model(ActionPut, body)
    exec_spec = None
    if put.exec is not None:
        e = put.exec
        if e.main is not None and not isinstance(e.main, str):
            raise InvalidInput(messages.main_not_string(e.kind or "nodejs:default"))
        exec_spec = ExecSpec(
            kind=e.kind,
            code=e.code,
            main=e.main if isinstance(e.main, str) else None,
            image=e.image,
            components=None if e.components is None else tuple(e.components),
        )
    limits = None
    if put.limits is not None:
        lim = put.limits
        limits = LimitsSpec(lim.timeout, lim.memory, lim.logs, lim.concurrency)
    spec = ActionSpec(
        exec=exec_spec,
        parameters=key_values(put.parameters),
        annotations=key_values(put.annotations),
        limits=limits,
        publish=put.publish,
        version=put.version,
    )
    return spec, tuple(put.delAnnotations or ())


def _entity_namespace(action: Action) -> str:
    return f"{action.namespace}/{action.package}" if action.package else action.namespace


def _limits(action: Action) -> dict[str, int]:
    lim = action.limits
    return {
        "timeout": lim.timeout,
        "memory": lim.memory,
        "logs": lim.logs,
        "concurrency": lim.concurrency,
    }


def action_json(action: Action, *, with_code: bool = True) -> dict[str, Any]:
    e = action.exec
    exec_: dict[str, Any] = {"kind": e.kind}
    if e.components:
        exec_["components"] = list(e.components)
    else:
        if e.image:
            exec_["image"] = e.image
        if with_code and e.code is not None:
            exec_["code"] = e.code
        if e.main:
            exec_["main"] = e.main
        exec_["binary"] = e.binary
    return {
        "namespace": _entity_namespace(action),
        "name": action.name,
        "version": action.version,
        "publish": action.publish,
        "exec": exec_,
        "parameters": kv_json(action.parameters),
        "limits": _limits(action),
        "annotations": kv_json(action.annotations),
        "updated": action.updated,
    }


def action_summary(action: Action) -> dict[str, Any]:
    return {
        "namespace": _entity_namespace(action),
        "name": action.name,
        "version": action.version,
        "publish": action.publish,
        "annotations": kv_json(action.annotations),
        "limits": _limits(action),
        "exec": {"binary": action.exec.binary},
        "updated": action.updated,
    }


def activation_response(activation: Activation) -> dict[str, Any]:
    r = activation.response
    return {
        "status": r["status"],
        "success": r["success"],
        "result": r["result"],
        "size": r.get("size", 0),
    }


def _end(activation: Activation) -> dict[str, int]:
    """`end` and `duration`, left out when `end` is 0 (trigger activations, §3.5)."""
    if not activation.end:
        return {}
    return {"end": activation.end, "duration": activation.duration}


def activation_json(activation: Activation) -> dict[str, Any]:
    out: dict[str, Any] = {
        "namespace": activation.namespace,
        "name": activation.name,
        "subject": activation.subject,
        "activationId": activation.activation_id,
        "start": activation.start,
        **_end(activation),
        "response": activation_response(activation),
        "logs": activation.logs,
        "version": activation.version,
        "publish": False,
        "annotations": activation.annotations,
    }
    if activation.cause:
        out["cause"] = activation.cause
    return out


def activation_summary(activation: Activation) -> dict[str, Any]:
    out: dict[str, Any] = {
        "namespace": activation.namespace,
        "name": activation.name,
        "version": activation.version,
        "publish": False,
        "annotations": activation.annotations,
        "activationId": activation.activation_id,
        "start": activation.start,
        **_end(activation),
    }
    if activation.end:
        out["statusCode"] = activation.status_code
    if activation.cause:
        out["cause"] = activation.cause
    return out
