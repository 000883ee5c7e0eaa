"""`POST /api/v1/namespaces/{ns}/homerun/adobeAuth`, which the catalog's `require-adobe-auth`
validators call with the Basic credentials of the namespace running the secured sequence; and
the validators themselves in the catalog."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.domain import TokenScope
from controller.services import catalog, credentials
from controller.settings import AdobeAuthSettings, Settings
from controller.setup import in_transaction
from tests.controller.api.openwhisk.support import API, Caller, assert_error, basic
from tests.controller.services.jwtissuer import AUDIENCE, FAILED, INVALID_TOKEN, ISSUER, Issuer

Issue = Callable[..., Awaitable[dict[str, str]]]
URL = f"{API}/namespaces/_/homerun/adobeAuth"
ORG = "ACME0000@AdobeOrg"


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    return Issuer()


@pytest.fixture
def settings(database_url: str, tmp_path: Path, issuer: Issuer) -> Settings:
    """The app accepts JWTs of `issuer`, whose keys are in a JWKS file."""
    jwks = issuer.write_jwks(tmp_path / "jwks.json")
    adobe_auth = AdobeAuthSettings(issuer=ISSUER, audience=AUDIENCE, jwks=str(jwks))
    return Settings(data_dir=tmp_path, database_url=database_url, adobe_auth=adobe_auth)


async def ask(
    client: httpx.AsyncClient, caller: Caller, authorization: str | None, org: str | None = ORG
) -> dict[str, Any]:
    response = await client.post(
        URL, json={"authorization": authorization, "imsOrgId": org}, headers=caller.headers
    )
    assert response.status_code == 200, response.text
    verdict: dict[str, Any] = response.json()
    return verdict


def bearer(headers: dict[str, str]) -> str:
    return headers["Authorization"]


ACCEPTED = {"accepted": True}


def refused(status: int, error: str) -> dict[str, Any]:
    return {"accepted": False, "statusCode": status, "error": error}


async def test_operator_tokens_that_reach_the_namespace_are_accepted(
    client: httpx.AsyncClient, acme: Caller, globex: Caller, issue: Issue
) -> None:
    acme_token = bearer(await issue(org="acme"))
    admin_token = bearer(await issue(admin=True))
    globex_token = bearer(await issue(org="globex"))

    assert await ask(client, acme, acme_token) == ACCEPTED
    assert await ask(client, acme, admin_token) == ACCEPTED
    assert await ask(client, acme, globex_token) == refused(403, FAILED)
    assert await ask(client, globex, globex_token) == ACCEPTED
    assert await ask(client, acme, "Bearer hrt_not-a-token") == refused(401, INVALID_TOKEN)
    assert await ask(client, acme, acme_token.replace("Bearer", "bearer ")) == ACCEPTED


async def test_a_revoked_token_is_refused(
    client: httpx.AsyncClient, acme: Caller, settings: Settings
) -> None:
    async def work(session: Any) -> tuple[int, str]:
        view, secret = await credentials.create_token(session, TokenScope.ORG, "acme")
        return view.id, secret

    token_id, secret = await in_transaction(settings, work)
    assert await ask(client, acme, f"Bearer {secret}") == ACCEPTED
    await in_transaction(settings, lambda s: credentials.revoke_token(s, token_id))
    assert await ask(client, acme, f"Bearer {secret}") == refused(401, INVALID_TOKEN)


async def test_jwts_of_the_configured_issuer_are_accepted(
    client: httpx.AsyncClient, acme: Caller, issuer: Issuer
) -> None:
    assert await ask(client, acme, f"Bearer {issuer.token()}") == ACCEPTED
    expired = issuer.token(lifetime_s=-3600)
    assert await ask(client, acme, f"Bearer {expired}") == refused(401, INVALID_TOKEN)
    stranger = Issuer(kid=issuer.kid).token()
    assert await ask(client, acme, f"Bearer {stranger}") == refused(401, INVALID_TOKEN)


@pytest.mark.parametrize(
    ("authorization", "org", "error"),
    [
        (None, ORG, "cannot authorize request, reason: missing authorization header"),
        ("Bearer x", None, "cannot authorize request, reason: missing x-gw-ims-org-id header"),
        ("Basic dXNlcjpwYXNz", ORG, INVALID_TOKEN),
    ],
)
async def test_missing_headers_are_refused_as_adobe_refuses_them(
    client: httpx.AsyncClient, acme: Caller, authorization: str | None, org: str | None, error: str
) -> None:
    assert await ask(client, acme, authorization, org) == refused(401, error)


async def test_an_empty_body_is_a_request_without_headers(
    client: httpx.AsyncClient, acme: Caller
) -> None:
    response = await client.post(URL, headers=acme.headers)
    assert response.json() == refused(
        401, "cannot authorize request, reason: missing authorization header"
    )


async def test_the_call_needs_the_namespace_credentials(
    client: httpx.AsyncClient, acme: Caller, globex: Caller, issue: Issue
) -> None:
    body = {"authorization": "Bearer x", "imsOrgId": ORG}
    assert_error(await client.post(URL, json=body), 401)
    assert_error(await client.post(URL, json=body, headers=basic("nobody:nothing")), 401)
    token = {"Authorization": bearer(await issue(org="acme"))}
    assert_error(await client.post(URL, json=body, headers=token), 401)
    other = f"{API}/namespaces/{globex.name}/homerun/adobeAuth"
    assert_error(await client.post(other, json=body, headers=acme.headers), 403)
    own = f"{API}/namespaces/{acme.name}/homerun/adobeAuth"
    assert (await client.post(own, json=body, headers=acme.headers)).status_code == 200
    get = await client.get(own, headers=acme.headers)
    assert_error(get, 405)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ([], 400),
        ("Bearer x", 400),
        ({"authorization": 7}, 400),
        ({"authorization": "Bearer x", "imsOrgId": ["a"]}, 400),
        ({"authorization": "Bearer x", "token": "x"}, 400),
        ({"authorization": "Bearer " + "x" * 20_000}, 400),
    ],
)
async def test_bad_bodies_are_refused(
    client: httpx.AsyncClient, acme: Caller, body: Any, status: int
) -> None:
    assert_error(await client.post(URL, json=body, headers=acme.headers), status)


async def test_bodies_that_are_not_json_are_refused(
    client: httpx.AsyncClient, acme: Caller
) -> None:
    headers = {**acme.headers, "content-type": "text/plain"}
    assert_error(await client.post(URL, content=b"hello", headers=headers), 415)
    json_headers = {**acme.headers, "content-type": "application/json"}
    assert_error(await client.post(URL, content=b"{nope", headers=json_headers), 400)
    huge = b'{"authorization": "' + b"x" * (70 * 1024) + b'"}'
    assert_error(await client.post(URL, content=huge, headers=json_headers), 413)


async def test_the_endpoint_is_in_the_openwhisk_document(client: httpx.AsyncClient) -> None:
    document = (await client.get(f"{API}/api-docs")).json()
    operation = document["paths"]["/api/v1/namespaces/{namespace}/homerun/adobeAuth"]["post"]
    assert set(operation["responses"]) == {"200", "400", "401", "403", "413", "415"}


# The validators in the catalog.


@pytest.mark.parametrize("namespace", catalog.ADOBE_NAMESPACES)
@pytest.mark.parametrize("name", ["headless-v2", "app-registry", "headless"])
async def test_the_validators_are_public_nodejs_actions_with_the_api_key(
    client: httpx.AsyncClient, acme: Caller, namespace: str, name: str
) -> None:
    url = f"{API}/namespaces/{namespace}/actions/shared-validators-v1/{name}"
    response = await client.get(url, headers=acme.headers)
    assert response.status_code == 200, response.text
    action = response.json()
    assert action["exec"]["kind"].startswith("nodejs:")
    assert "homerun/adobeAuth" in action["exec"]["code"]
    annotations = {a["key"]: a["value"] for a in action["annotations"]}
    assert annotations["provide-api-key"] is True
    package = await client.get(
        f"{API}/namespaces/{namespace}/packages/shared-validators-v1", headers=acme.headers
    )
    assert package.status_code == 200 and package.json()["publish"] is True


async def test_a_sequence_may_start_with_a_validator(
    client: httpx.AsyncClient, acme: Caller
) -> None:
    """What `aio app deploy` creates for a web action `app/hello` with require-adobe-auth."""
    code = {"exec": {"kind": "nodejs:default", "code": "function main(p) { return p; }"}}
    for path, body in [
        ("packages/app", {}),
        ("actions/app/__secured_hello", {**code, "annotations": [
            {"key": "web-export", "value": False}, {"key": "raw-http", "value": False}]}),
        ("actions/app/hello", {
            "exec": {"kind": "sequence", "components": [
                "/adobeio/shared-validators-v1/headless-v2", "app/__secured_hello"]},
            "annotations": [{"key": "web-export", "value": True},
                            {"key": "raw-http", "value": False}]}),
    ]:  # fmt: skip
        response = await client.put(f"{API}/namespaces/_/{path}", json=body, headers=acme.headers)
        assert response.status_code == 200, response.text
    sequence = response.json()
    assert sequence["exec"]["components"][0] == "/adobeio/shared-validators-v1/headless-v2"


async def test_syncing_again_keeps_the_validators_versions(
    client: httpx.AsyncClient, acme: Caller, settings: Settings
) -> None:
    from controller.runtimes import load_manifest
    from controller.services.actions import WriteContext

    url = f"{API}/namespaces/adobeio/actions/shared-validators-v1/headless-v2"
    before = (await client.get(url, headers=acme.headers)).json()["version"]
    ctx = WriteContext(load_manifest(), settings.limits)
    await in_transaction(settings, lambda session: catalog.sync(session, ctx))
    assert (await client.get(url, headers=acme.headers)).json()["version"] == before
