"""Unauthenticated information routes and the caller's namespaces and limits."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

import homerun
from controller.api.endpoint import Endpoint, table
from controller.api.openwhisk.common import authenticated, namespace_of, require_own
from controller.api.openwhisk.schemas import NAMESPACE
from controller.api.state import app_state
from controller.limits import MB

BUILD = "homerun-" + homerun.__version__


async def root(request: Request) -> Response:
    """`GET /`: OpenWhisk's deployment information; clients read `runtimes` from it."""
    state = app_state(request)
    limits = state.settings.limits
    runtimes: dict[str, list[dict[str, Any]]] = {
        family: [
            {
                "kind": rt.kind,
                "image": rt.image,
                "deprecated": rt.deprecated,
                "default": rt.default,
                "attached": True,
                "requireMain": False,
            }
            for rt in rts
        ]
        for family, rts in state.manifest.families.items()
    }
    return JSONResponse(
        {
            "description": "Homerun: an OpenWhisk- and Adobe I/O Runtime-compatible runtime",
            "support": {"github": "https://github.com/apache/openwhisk/issues"},
            "api_paths": ["/api/v1"],
            "limits": {
                "actions_per_minute": limits.invocations_per_minute,
                "triggers_per_minute": limits.fires_per_minute,
                "concurrent_actions": limits.concurrent_invocations,
                "sequence_length": limits.sequence_max_length,
                "min_action_duration": limits.timeout_min,
                "max_action_duration": limits.timeout_max,
                "min_action_memory": limits.memory_min * MB,
                "max_action_memory": limits.memory_max * MB,
                "min_action_logs": limits.logs_min * MB,
                "max_action_logs": limits.logs_max * MB,
            },
            "runtimes": runtimes,
        }
    )


async def api_info(request: Request) -> Response:
    return JSONResponse(
        {
            "description": "OpenWhisk API",
            "api_version": "1.0.0",
            "api_version_path": "v1",
            "build": BUILD,
            "buildno": homerun.__version__,
            "swagger_paths": {"ui": "/docs", "api-docs": "/api-docs"},
        }
    )


async def ping(request: Request) -> Response:
    return PlainTextResponse("pong")


async def list_namespaces(request: Request) -> Response:
    async with authenticated(request) as (_, caller):
        return JSONResponse([caller.name])


async def namespace_limits(request: Request) -> Response:
    limits = app_state(request).settings.limits
    async with authenticated(request) as (_, caller):
        namespace = namespace_of(request, caller)
        require_own(namespace, caller, namespace)
    return JSONResponse(
        {
            "invocationsPerMinute": limits.invocations_per_minute,
            "concurrentInvocations": limits.concurrent_invocations,
            "firesPerMinute": limits.fires_per_minute,
            "minActionMemory": limits.memory_min,
            "maxActionMemory": limits.memory_max,
            "minActionLogs": limits.logs_min,
            "maxActionLogs": limits.logs_max,
            "minActionTimeout": limits.timeout_min,
            "maxActionTimeout": limits.timeout_max,
            "minActionConcurrency": limits.concurrency_min,
            "maxActionConcurrency": limits.concurrency_max,
            "maxParameterSize": f"{limits.parameters_max_bytes // MB} MB",
        }
    )


TAG = "info"
_OBJECT = {"type": "object"}
_ROOT = {
    "type": "object",
    "required": ["api_paths", "limits", "runtimes"],
    "properties": {
        "runtimes": {
            "type": "object",
            "additionalProperties": {
                "type": "array",
                "items": {"type": "object", "required": ["kind"]},
            },
        }
    },
}
ENDPOINTS = (
    Endpoint("GET", "/", root, "Deployment information: limits and runtimes", TAG,
             response=_ROOT, authenticated=False),
    Endpoint("GET", "/api/v1", api_info, "API version and build", TAG, response=_OBJECT,
             authenticated=False),
    Endpoint("GET", "/api/v1/", api_info, "API version and build", TAG, response=_OBJECT,
             authenticated=False),
    Endpoint("GET", "/ping", ping, "Liveness: `pong`", TAG, response={"const": "pong"},
             response_media_type="text/plain", authenticated=False),
    Endpoint("GET", "/api/v1/namespaces", list_namespaces, "The caller's namespace, in a list",
             TAG, response={"type": "array", "items": {"type": "string"}}, errors=(401,)),
    Endpoint("GET", "/api/v1/namespaces/{namespace}/limits", namespace_limits,
             "The namespace's limits", TAG, response=_OBJECT, params=(NAMESPACE,),
             errors=(400, 401, 403)),
)  # fmt: skip
TABLE = table(ENDPOINTS)
