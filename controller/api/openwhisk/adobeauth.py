"""`POST /api/v1/namespaces/{namespace}/homerun/adobeAuth`: a Homerun extension of the
OpenWhisk API that the catalog's `require-adobe-auth` validators
(`/adobeio/shared-validators-v1/*`) call, with the `__OW_API_KEY` of the namespace running the
secured web sequence, to ask whether the request's bearer token may call that namespace's
secured actions (controller.services.adobeauth).

Body: `{"authorization": <the Authorization header or null>, "imsOrgId": <the x-gw-ims-org-id
header or null>}`. Answer: 200 `{"accepted": true}`, or 200 `{"accepted": false, "statusCode",
"error"}`, what the validator answers its web request with. Errors of this call itself (its
own credentials, a malformed body) are the surface's `{error, code}`.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from controller import messages
from controller.api.constraints import Schema
from controller.api.endpoint import Endpoint, table
from controller.api.openwhisk.common import authenticated, json_body, namespace_of, require_own
from controller.api.openwhisk.schemas import NAMESPACE
from controller.api.state import AppState, app_state
from controller.errors import InvalidInput
from controller.services import adobeauth

PATH = "/api/v1/namespaces/{namespace}/homerun/adobeAuth"
MAX_BODY_BYTES = 64 * 1024
# Body field -> the longest value taken (IMS access tokens run to a few kilobytes).
FIELDS = {"authorization": 16 * 1024, "imsOrgId": 1024}


def _verifier(request: Request, state: AppState) -> adobeauth.JwtVerifier | None:
    """This app's JWT verifier (it caches the issuer's keys), made on first use."""
    settings = state.settings.adobe_auth
    if not settings.enabled:
        return None
    verifier: adobeauth.JwtVerifier | None = getattr(request.app.state, "adobe_auth", None)
    if verifier is None or verifier.settings != settings:
        verifier = adobeauth.JwtVerifier(settings)
        request.app.state.adobe_auth = verifier
    return verifier


def _fields(body: dict[str, Any]) -> dict[str, str | None]:
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise InvalidInput(messages.malformed(f"unknown field '{unknown[0]}'"))
    values: dict[str, str | None] = {}
    for name, longest in FIELDS.items():
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            raise InvalidInput(messages.malformed(f"'{name}' must be a string or null"))
        if value is not None and len(value) > longest:
            raise InvalidInput(messages.malformed(f"'{name}' is longer than {longest}"))
        values[name] = value
    return values


async def check(request: Request) -> Response:
    state = app_state(request)
    async with authenticated(request) as (_, caller):
        require_own(namespace_of(request, caller), caller, caller.name)
    fields = _fields(await json_body(request, MAX_BODY_BYTES))
    verdict = await adobeauth.check(
        state.transaction, caller, fields["authorization"], fields["imsOrgId"],
        _verifier(request, state),
    )  # fmt: skip
    if verdict.accepted:
        return JSONResponse({"accepted": True})
    return JSONResponse({"accepted": False, "statusCode": verdict.status, "error": verdict.error})


_HEADER_VALUE: Schema = {"type": ["string", "null"]}
REQUEST: Schema = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        name: {**_HEADER_VALUE, "maxLength": longest} for name, longest in FIELDS.items()
    },
    "description": "The secured web request's `Authorization` and `x-gw-ims-org-id` headers",
}
RESPONSE: Schema = {
    "type": "object",
    "required": ["accepted"],
    "properties": {
        "accepted": {"type": "boolean"},
        "statusCode": {"type": "integer", "enum": [401, 403, 503]},
        "error": {"type": "string"},
    },
}
ENDPOINTS = (
    Endpoint("POST", PATH, check,
             "Homerun: may this bearer token call the namespace's require-adobe-auth actions?",
             "homerun", request=REQUEST, response=RESPONSE, params=(NAMESPACE,),
             body_optional=True, errors=(400, 401, 403, 413, 415)),
)  # fmt: skip
TABLE = table(ENDPOINTS)
