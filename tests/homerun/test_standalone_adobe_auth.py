"""`require-adobe-auth` end to end: a web sequence made the way `aio app deploy` makes it
against a localhost apihost, `[/adobeio/shared-validators-v1/headless-v2, app/__secured_hello]`,
served by `homerun standalone` with the process sandbox. The validator calls back into the API
with the namespace's key; the secured action runs only for a bearer token the controller
accepts: an operator token of the namespace's organization, or a JWT of the configured issuer
(a JWKS file)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.controller.api.openwhisk.support import basic
from tests.controller.services.jwtissuer import (
    AUDIENCE,
    FAILED,
    INVALID_TOKEN,
    ISSUER,
    MISSING_AUTHORIZATION,
    MISSING_ORG,
    Issuer,
)
from tests.homerun.support import Standalone, running

pytestmark = pytest.mark.slow

OW = "/api/v1/namespaces/_"
WEB = "/api/v1/web/guest/app/hello"
ORG_HEADER = {"x-gw-ims-org-id": "GUEST0000@AdobeOrg"}
SECURED = """
function main(params) {
  return {
    statusCode: 200,
    body: {
      greeting: 'hello ' + (params.name || 'world'),
      method: params.__ow_method,
      org: params.__ow_headers['x-gw-ims-org-id'],
      sawToken: (params.__ow_headers.authorization || '').startsWith('Bearer '),
    },
  };
}
"""


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    return Issuer()


@pytest.fixture(scope="module")
def server(issuer: Issuer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Standalone]:
    jwks = issuer.write_jwks(tmp_path_factory.mktemp("issuer") / "jwks.json")
    env = {
        "HOMERUN_ADOBE_AUTH__ISSUER": ISSUER,
        "HOMERUN_ADOBE_AUTH__AUDIENCE": AUDIENCE,
        "HOMERUN_ADOBE_AUTH__JWKS": str(jwks),
    }
    with running("process", **env) as standalone:
        deploy(standalone)
        yield standalone


def deploy(server: Standalone) -> None:
    """What `aio app deploy` sends for a web action `app/hello` with require-adobe-auth."""
    headers = basic(server.value("guest auth"))
    entities: list[tuple[str, dict[str, Any]]] = [
        ("packages/app", {}),
        ("actions/app/__secured_hello", {
            "exec": {"kind": "nodejs:default", "code": SECURED},
            "annotations": [{"key": "web-export", "value": False},
                            {"key": "raw-http", "value": False}]}),
        ("actions/app/hello", {
            "exec": {"kind": "sequence", "components": [
                "/adobeio/shared-validators-v1/headless-v2", "app/__secured_hello"]},
            "annotations": [{"key": "web-export", "value": True},
                            {"key": "raw-http", "value": False}]}),
    ]  # fmt: skip
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
        for path, body in entities:
            response = http.put(f"{OW}/{path}", json=body, params={"overwrite": "true"})
            assert response.status_code == 200, response.text


def org_token(server: Standalone, org: str) -> str:
    """`homerun admin token create --org ORG`, as the operator runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMERUN_")}
    result = subprocess.run(
        [sys.executable, "-m", "homerun.cli", "admin", "token", "create", "--org", org],
        env={**env, "HOMERUN_DATA_DIR": str(server.data_dir)},
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return result.stdout.strip()


def call(server: Standalone, headers: dict[str, str]) -> httpx.Response:
    return httpx.get(f"{server.url}{WEB}", params={"name": "you"}, headers=headers, timeout=120)


def assert_refused(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"error": error}


def assert_secured_result(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.json() == {
        "greeting": "hello you", "method": "get", "org": ORG_HEADER["x-gw-ims-org-id"],
        "sawToken": True,
    }  # fmt: skip


def test_without_a_token_the_request_is_refused(server: Standalone) -> None:
    assert_refused(call(server, ORG_HEADER), 401, MISSING_AUTHORIZATION)
    token = org_token(server, "guest")
    assert_refused(call(server, {"Authorization": f"Bearer {token}"}), 401, MISSING_ORG)


def test_a_bad_token_is_refused(server: Standalone, issuer: Issuer) -> None:
    for authorization in ("Bearer hrt_nope", "Basic Z3Vlc3Q6Z3Vlc3Q=", "Bearer a.b.c"):
        response = call(server, {"Authorization": authorization, **ORG_HEADER})
        assert_refused(response, 401, INVALID_TOKEN)
    expired = issuer.token(lifetime_s=-3600)
    assert_refused(call(server, {"Authorization": f"Bearer {expired}", **ORG_HEADER}), 401,
                   INVALID_TOKEN)  # fmt: skip


def test_an_org_token_of_the_namespace_reaches_the_secured_action(server: Standalone) -> None:
    token = org_token(server, "guest")
    assert_secured_result(call(server, {"Authorization": f"Bearer {token}", **ORG_HEADER}))


def test_an_org_token_of_another_org_is_refused(server: Standalone) -> None:
    token = org_token(server, "globex")
    response = call(server, {"Authorization": f"Bearer {token}", **ORG_HEADER})
    assert_refused(response, 403, FAILED)


def test_a_jwt_of_the_configured_issuer_reaches_the_secured_action(
    server: Standalone, issuer: Issuer
) -> None:
    token = issuer.token()
    assert_secured_result(call(server, {"Authorization": f"Bearer {token}", **ORG_HEADER}))


def test_the_secured_action_is_not_a_web_action(server: Standalone) -> None:
    response = httpx.get(f"{server.url}/api/v1/web/guest/app/__secured_hello", timeout=30)
    assert response.status_code == 404, response.text


def test_tokens_stay_out_of_the_log(server: Standalone, issuer: Issuer) -> None:
    token = org_token(server, "guest")
    jwt = issuer.token()
    for value in (token, jwt):
        call(server, {"Authorization": f"Bearer {value}", **ORG_HEADER})
    log = Path(server.log).read_text()
    assert token not in log and jwt not in log
