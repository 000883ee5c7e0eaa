"""An App Builder project (tests/compat/aio_app: a package of web and non-web actions on
nodejs:22, inputs, an included file, limits, a sequence, `require-adobe-auth` on one web
action, a frontend) deployed with `aio app deploy` against `homerun standalone`, configured
only by the `.env` the README gives; run, inspected with `aio app get-url` and `aio app logs`,
and removed with `aio app undeploy`."""

from __future__ import annotations

import itertools
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.compat.conftest import AIO_MODULE_TIMEOUT, AioCli, Homerun

pytestmark = [pytest.mark.slow, pytest.mark.timeout(AIO_MODULE_TIMEOUT + 300)]

PROJECT = Path(__file__).resolve().parent / "aio_app"
PACKAGE = "homerun-app"


def dotenv(homerun: Homerun) -> str:
    """The project's `.env`: the lines the standalone's banner gives for it, as README.md "Use
    with App Builder" says."""
    lines = homerun.banner.split("put these lines in the project's .env\n", 1)[1].splitlines()
    taken = [line.strip() for line in itertools.takewhile(lambda x: x.startswith("  AIO_"), lines)]
    assert len(taken) == 7, homerun.banner
    return "\n".join(taken) + "\n"


def public(homerun: Homerun) -> str:
    """The API host as the banner names it (and so the `.env`, and the CLI's URLs)."""
    return homerun.apihost.replace("127.0.0.1", "localhost")


@pytest.fixture(scope="module")
def app(aio: Path, homerun: Homerun, tmp_path_factory: pytest.TempPathFactory) -> AioCli:
    """`aio` in a copy of the project, with its `.env` and nothing else of the runtime in
    its environment."""
    home = tmp_path_factory.mktemp("aio-app-home")
    cli = AioCli(aio, homerun.apihost, homerun.auth, home)
    for key in ("AIO_RUNTIME_APIHOST", "AIO_RUNTIME_AUTH", "AIO_RUNTIME_NAMESPACE"):
        del cli.env[key]
    del cli.env["USE_RUNTIME_AUTH"]
    cli.cwd = home / PACKAGE
    shutil.copytree(PROJECT, cli.cwd)
    (cli.cwd / ".env").write_text(dotenv(homerun))
    return cli


@pytest.fixture(scope="module")
def deployed(app: AioCli) -> Iterator[str]:
    """What `aio app deploy --no-web-assets --no-publish` printed."""
    yield app("app", "deploy", "--no-web-assets", "--no-publish")


@pytest.fixture(scope="module")
def api(homerun: Homerun) -> Iterator[httpx.Client]:
    user, _, password = homerun.auth.partition(":")
    with httpx.Client(base_url=homerun.apihost, auth=(user, password), timeout=90) as client:
        yield client


def web_url(homerun: Homerun, name: str) -> str:
    return f"{public(homerun)}/api/v1/web/guest/{PACKAGE}/{name}"


def annotations(entity: dict[str, Any]) -> dict[str, Any]:
    return {a["key"]: a["value"] for a in entity.get("annotations", [])}


def test_deploy_prints_the_actions_urls(deployed: str, homerun: Homerun) -> None:
    assert "Successful deployment" in deployed, deployed
    for name in ("hello", "secured", "greet-worker"):
        assert web_url(homerun, name) in deployed, deployed


def test_the_manifest_is_deployed_as_written(deployed: str, api: httpx.Client) -> None:
    package = api.get(f"/api/v1/namespaces/_/packages/{PACKAGE}").json()
    assert {p["key"]: p["value"] for p in package["parameters"]} == {"GREETING": "Hello"}
    assert annotations(package)["whisk-managed"]["projectName"] == PACKAGE
    listed = api.get("/api/v1/namespaces/_/actions", params={"limit": 50}).json()
    names = sorted(a["name"] for a in listed if a["namespace"] == f"guest/{PACKAGE}")
    # `require-adobe-auth` moved the action behind a sequence of the same name
    assert names == ["__secured_secured", "greet-worker", "hello", "secured", "worker"]
    worker = api.get(f"/api/v1/namespaces/_/actions/{PACKAGE}/worker").json()
    assert worker["exec"]["kind"] == "nodejs:22"
    assert worker["limits"]["timeout"] == 30000
    assert worker["limits"]["memory"] == 512
    assert worker["limits"]["concurrency"] == 2
    hello = api.get(f"/api/v1/namespaces/_/actions/{PACKAGE}/hello").json()
    assert annotations(hello)["web-export"] is True
    secured = api.get(f"/api/v1/namespaces/_/actions/{PACKAGE}/secured").json()
    # the app has a frontend: the app-registry validator guards it
    assert secured["exec"]["components"] == [
        "/adobeio/shared-validators-v1/app-registry",
        f"/guest/{PACKAGE}/__secured_secured",
    ]


def test_a_web_action_runs_with_its_inputs(deployed: str, homerun: Homerun) -> None:
    response = httpx.get(web_url(homerun, "hello"), params={"name": "ann"}, timeout=90)
    assert response.status_code == 200, response.text
    assert response.json() == {"greeting": "Hello, ann!", "level": "debug"}


def test_a_non_web_action_runs_with_its_included_file_on_node_22(
    deployed: str, api: httpx.Client
) -> None:
    response = api.post(
        f"/api/v1/namespaces/_/actions/{PACKAGE}/worker",
        params={"blocking": "true", "result": "true"},
        json={"n": 1},
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["name"] == "beta" and result["words"] == 3, result
    assert result["node"].startswith("v22."), result


def test_the_sequence_runs_as_a_web_action(deployed: str, homerun: Homerun) -> None:
    response = httpx.get(web_url(homerun, "greet-worker"), timeout=90)
    assert response.status_code == 200, response.text
    assert response.json()["greeting"] == "Hello, alpha!"


def test_the_secured_action_needs_a_token(deployed: str, homerun: Homerun) -> None:
    url = web_url(homerun, "secured")
    refused = httpx.get(url, timeout=90)
    assert refused.status_code == 401, refused.text
    allowed = httpx.get(
        url,
        headers={"Authorization": f"Bearer {homerun.operator_token}", "x-gw-ims-org-id": "guest"},
        timeout=90,
    )
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["secret"] == 42


def test_get_url_lists_every_action(app: AioCli, deployed: str, homerun: Homerun) -> None:
    printed = app("app", "get-url")
    for name in ("hello", "secured", "greet-worker"):
        assert web_url(homerun, name) in printed, printed


def test_logs_show_what_the_actions_wrote(app: AioCli, deployed: str, homerun: Homerun) -> None:
    httpx.get(web_url(homerun, "hello"), params={"name": "logged"}, timeout=90)
    for _ in range(20):  # activation records are written after the answer
        printed = app("app", "logs", "--limit", "10")
        if "hello: greeting logged" in printed:
            break
        time.sleep(0.5)
    assert "hello: greeting logged" in printed, printed


def test_undeploy_removes_the_app(app: AioCli, deployed: str, api: httpx.Client) -> None:
    printed = app("app", "undeploy", "--no-web-assets")
    assert "Undeploy done" in printed, printed
    listed = api.get("/api/v1/namespaces/_/actions", params={"limit": 50}).json()
    assert [a for a in listed if a["namespace"] == f"guest/{PACKAGE}"] == []
    assert api.get(f"/api/v1/namespaces/_/packages/{PACKAGE}").status_code == 404
