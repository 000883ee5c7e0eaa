"""`/api/v1/namespaces/{namespace}/packages[/{name}]`: packages and package bindings.

POST on a package is not a route: the router answers 405.
"""

from __future__ import annotations

from typing import Any, cast

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, field_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from controller.actionspec import key_values
from controller.api.constraints import ENTITY_NAME
from controller.api.endpoint import Endpoint, Param, table
from controller.api.http import parse_model
from controller.api.openapi import ref
from controller.api.openwhisk.common import (
    authenticated,
    json_body,
    namespace_of,
    page,
    query_bool,
    require_own,
)
from controller.api.openwhisk.entities import KeyValueIn
from controller.api.openwhisk.schemas import NAMESPACE, OVERWRITE, PAGING, listing, put_rules
from controller.api.state import app_state
from controller.domain import Action, kv_json
from controller.services import packages
from controller.services.packages import BindingRef, Package, PackageSpec, PackageView

PREFIX = "/api/v1/namespaces/{namespace}/packages"

_LOOSE = ConfigDict(extra="ignore")  # OpenWhisk ignores unknown fields of PUT bodies


class BindingIn(BaseModel):
    model_config = _LOOSE
    namespace: StrictStr
    name: StrictStr


def _no_binding_too(schema: dict[str, Any]) -> None:
    """`{}` is no binding, as `None` is."""
    schema["anyOf"] = [*schema.get("anyOf", []), {"type": "object", "maxProperties": 0}]


_NO_BINDING_TOO = cast(Any, _no_binding_too)


class PackagePut(BaseModel):
    """`PUT /namespaces/{ns}/packages/{name}`: `namespace` and `name` come from the URL."""

    model_config = _LOOSE
    parameters: list[KeyValueIn] | None = None
    annotations: list[KeyValueIn] | None = None
    publish: StrictBool | None = None
    version: StrictStr | None = None
    binding: BindingIn | None = Field(None, json_schema_extra=_NO_BINDING_TOO)

    @field_validator("binding", mode="before")
    @classmethod
    def _empty_binding(cls, value: Any) -> Any:
        # OpenWhisk reads `"binding": {}` (what GET returns for a package) as no binding.
        return None if value == {} else value


def package_put(body: dict[str, Any]) -> PackageSpec:
    put = parse_model(PackagePut, body)
    binding = None if put.binding is None else BindingRef(put.binding.namespace, put.binding.name)
    return PackageSpec(
        parameters=key_values(put.parameters),
        annotations=key_values(put.annotations),
        publish=put.publish,
        version=put.version,
        binding=binding,
    )


def _binding_json(binding: BindingRef) -> dict[str, str]:
    return {"namespace": binding.namespace, "name": binding.name}


def package_json(package: Package) -> dict[str, Any]:
    return {
        "namespace": package.namespace,
        "name": package.name,
        "version": package.version,
        "publish": package.publish,
        "binding": {} if package.binding is None else _binding_json(package.binding),
        "parameters": kv_json(package.parameters),
        "annotations": kv_json(package.annotations),
        "updated": package.updated,
    }


def package_summary(package: Package) -> dict[str, Any]:
    return {
        "namespace": package.namespace,
        "name": package.name,
        "version": package.version,
        "publish": package.publish,
        "annotations": kv_json(package.annotations),
        "binding": False if package.binding is None else _binding_json(package.binding),
        "updated": package.updated,
    }


def _entry(action: Action) -> dict[str, Any]:
    return {
        "name": action.name,
        "version": action.version,
        "annotations": kv_json(action.annotations),
    }


def view_json(view: PackageView) -> dict[str, Any]:
    out = package_json(view.package)
    out["actions"] = [_entry(a) for a in view.actions if not packages.is_feed(a)]
    out["feeds"] = [_entry(a) for a in view.actions if packages.is_feed(a)]
    return out


async def list_packages(request: Request) -> Response:
    async with authenticated(request) as (session, caller):
        namespace = namespace_of(request, caller)
        p = page(request, "packages")
        if p.count:
            count = await packages.count_packages(session, caller, namespace)
            return JSONResponse({"packages": count})
        found = await packages.list_packages(session, caller, namespace, p.skip, p.limit)
    return JSONResponse([package_summary(pkg) for pkg in found])


async def get_package(request: Request) -> Response:
    async with authenticated(request) as (session, caller):
        namespace = namespace_of(request, caller)
        name = str(request.path_params["name"])
        view = await packages.get_package(session, caller, namespace, name)
    return JSONResponse(view_json(view))


async def put_package(request: Request) -> Response:
    state = app_state(request)
    async with authenticated(request) as (session, caller):
        namespace = namespace_of(request, caller)
        name = str(request.path_params["name"])
        require_own(namespace, caller, f"{namespace}/{name}")
        overwrite = query_bool(request, "overwrite", False)
        spec = package_put(await json_body(request, state.settings.limits.request_body_max_bytes))
        package = await packages.put_package(
            session, caller, name, spec, state.settings.limits, overwrite=overwrite
        )
    return JSONResponse(package_json(package))


async def delete_package(request: Request) -> Response:
    async with authenticated(request) as (session, caller):
        namespace = namespace_of(request, caller)
        name = str(request.path_params["name"])
        require_own(namespace, caller, f"{namespace}/{name}")
        force = query_bool(request, "force", False)
        package = await packages.delete_package(session, caller, name, force=force)
    return JSONResponse(package_json(package))


TAG = "packages"
_BINDING = {
    "type": "object",
    "required": ["namespace", "name"],
    "properties": {"namespace": ENTITY_NAME, "name": ENTITY_NAME},
}
_PUT_RULES = put_rules(binding={
    "description": "An existing package to bind (`namespace` may be `_`)",
    "anyOf": [{"type": "null"}, {"type": "object", "maxProperties": 0}, _BINDING],
})  # fmt: skip
NAME = Param("name", "path", "A package name (`default` is reserved)", ENTITY_NAME)
FORCE = Param("force", "query", "Delete the package's actions too", {"type": "boolean"})
ENDPOINTS = (
    Endpoint("GET", PREFIX, list_packages,
             "List packages (of another namespace: its public ones)", TAG,
             response=listing("PackageSummary", "packages"), params=(NAMESPACE, *PAGING),
             errors=(400, 401, 403)),
    Endpoint("GET", PREFIX + "/{name}", get_package, "Get a package with its actions and feeds",
             TAG, response=ref("PackageView"), params=(NAMESPACE, NAME),
             errors=(400, 401, 403, 404)),
    Endpoint("PUT", PREFIX + "/{name}", put_package,
             "Create a package or a binding, or update it with `overwrite=true`", TAG,
             body_optional=True, request=PackagePut, request_rules=_PUT_RULES,
             response=ref("Package"), params=(NAMESPACE, NAME, OVERWRITE),
             errors=(400, 401, 403, 404, 409, 413, 415)),
    Endpoint("DELETE", PREFIX + "/{name}", delete_package,
             "Delete a package (non-empty: only with `force=true`)", TAG,
             response=ref("Package"), params=(NAMESPACE, NAME, FORCE),
             errors=(400, 401, 403, 404, 409)),
)  # fmt: skip
TABLE = table(ENDPOINTS)
