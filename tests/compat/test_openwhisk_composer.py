"""Compositions built with the `openwhisk-composer` npm package (0.12.0): each is compiled with
its `compose` tool, deployed with its `deploy` tool (a conductor action, annotated `conductor`
with the composition, and the actions it names) against `homerun standalone`, and invoked; the
composed result is what OpenWhisk's conductor protocol makes of it."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.compat.conftest import CALL_TIMEOUT, CLIENT_ENV, JS_DIR, Homerun

pytestmark = pytest.mark.slow

COMPOSITIONS = JS_DIR / "compositions"
BIN = JS_DIR / "node_modules" / ".bin"


class Composer:
    """`compose` and `deploy`, with no `~/.wskprops` and no `__OW_*` of the caller's."""

    def __init__(self, node: str, homerun: Homerun, home: Path) -> None:
        self.node, self.homerun, self.home = node, homerun, home
        self.env = {k: v for k, v in os.environ.items() if not CLIENT_ENV.match(k)}
        self.env |= {"HOME": str(home), "WSK_CONFIG_FILE": str(home / "absent.wskprops")}

    def _run(self, tool: str, *args: str) -> str:
        done = subprocess.run(
            [self.node, str(BIN / tool), *args], cwd=self.home, env=self.env,
            capture_output=True, text=True, timeout=CALL_TIMEOUT,
        )  # fmt: skip
        assert done.returncode == 0, f"{tool} {args}: {done.returncode}\n{done.stdout}{done.stderr}"
        return done.stdout

    def deploy(self, name: str) -> str:
        """Compile `compositions/<name>.js` and deploy it as the action `<name>`."""
        compiled = self.home / f"{name}.json"
        compiled.write_text(self._run("compose", str(COMPOSITIONS / f"{name}.js")))
        return self._run(
            "deploy", name, str(compiled), "-w",
            "--apihost", self.homerun.apihost, "-u", self.homerun.auth,
        )  # fmt: skip


@pytest.fixture(scope="module")
def composer(node: str, homerun: Homerun, tmp_path_factory: pytest.TempPathFactory) -> Composer:
    return Composer(node, homerun, tmp_path_factory.mktemp("composer-home"))


@pytest.fixture(scope="module")
def api(homerun: Homerun) -> Iterator[httpx.Client]:
    user, _, password = homerun.auth.partition(":")
    auth = (user, password)
    with httpx.Client(base_url=homerun.apihost, auth=auth, timeout=CALL_TIMEOUT) as client:
        yield client


def invoke(api: httpx.Client, name: str, params: dict[str, Any]) -> httpx.Response:
    return api.post(
        f"/api/v1/namespaces/_/actions/{name}", params={"blocking": "true"}, json=params
    )


@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("sequence", {"n": 3}, {"n": 7}),
        ("if", {"n": 4}, {"n": 8}),
        ("if", {"n": 3}, {"n": 4}),
        ("while", {"n": 3}, {"n": 192}),
        ("try", {"n": 1}, {"recovered": "failed at 1"}),
        ("retain", {"n": 3}, {"params": {"n": 3}, "result": {"n": 6}}),
        ("let", {"n": 0}, {"n": 15, "done": True}),
    ],
)
def test_a_composition_deploys_and_returns_the_composed_result(
    composer: Composer, api: httpx.Client, name: str, params: dict[str, Any], expected: Any
) -> None:
    deployed = composer.deploy(name)
    assert "ok: created actions" in deployed and name in deployed, deployed
    response = invoke(api, name, params)
    assert response.status_code == 200, response.text
    record = response.json()
    assert record["response"]["result"] == expected
    marks = {a["key"]: a["value"] for a in record["annotations"]}
    assert marks["conductor"] is True and marks["kind"] == "sequence"
    assert len(record["logs"]) >= 3  # the conductor at least twice, a component between


def test_an_async_composition_answers_at_once_and_runs_on(
    composer: Composer, api: httpx.Client
) -> None:
    """`async` has the conductor invoke itself, with the `openwhisk` client and its own key,
    non-blocking: the answer names that activation, which completes the body."""
    composer.deploy("async")
    response = invoke(api, "async", {"n": 41})
    assert response.status_code == 200, response.text
    result = response.json()["response"]["result"]
    assert result["method"] == "async", result
    deadline = time.monotonic() + 60
    while True:
        found = api.get(f"/api/v1/namespaces/_/activations/{result['activationId']}")
        if found.status_code == 200:
            break
        assert time.monotonic() < deadline, found.text
        time.sleep(0.5)
    assert found.json()["response"]["result"] == {"n": 42}
