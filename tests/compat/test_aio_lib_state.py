"""`@adobe/aio-lib-state` (5.3.1 and 4.0.1) used inside an action, unchanged, against the State
API of `homerun standalone`: the library finds it through `AIO_STATE_ENDPOINT`, which Homerun
sets in the action's environment, and authenticates with the namespace's own credentials.
Keys are stored, read, listed and deleted; they expire with their TTL, survive a restart of
Homerun and stay out of other namespaces' reach. `aio app state` works against it too."""

from __future__ import annotations

import base64
import io
import re
import time
import zipfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.compat.conftest import (
    AIO_MODULE_TIMEOUT,
    JS_DIR,
    AioCli,
    Homerun,
    Standalone,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(AIO_MODULE_TIMEOUT + 300)]

ACTION_DIR = Path(__file__).resolve().parent / "state_action"
ACTION = "state"
LIBS = [pytest.param(5, id="v5"), pytest.param(4, id="v4")]


def action_zip() -> bytes:
    """The action's source and the node_modules of tests/compat/js (the `node` fixture
    installed them): a zip action, as users ship their dependencies."""
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in ("index.js", "package.json"):
            archive.write(ACTION_DIR / name, name)
        modules = JS_DIR / "node_modules"
        for path in sorted(modules.rglob("*")):
            if path.is_file() and not path.name.startswith(".homerun"):
                archive.write(path, "node_modules/" + str(path.relative_to(modules)))
    return data.getvalue()


class Namespace:
    """An OpenWhisk client of one namespace, with the State action deployed."""

    def __init__(self, apihost: str, auth: str, name: str) -> None:
        self.apihost, self.auth, self.name = apihost, auth, name

    def client(self) -> httpx.Client:
        user, _, password = self.auth.partition(":")
        return httpx.Client(base_url=self.apihost, auth=(user, password), timeout=90)

    def deploy(self, code: bytes) -> None:
        body = {
            "exec": {"kind": "nodejs:22", "code": base64.b64encode(code).decode(), "binary": True},
            # `init()` reads the namespace's key from __OW_API_KEY, which only such actions see
            "annotations": [{"key": "provide-api-key", "value": True}],
        }
        with self.client() as client:
            response = client.put(
                f"/api/v1/namespaces/_/actions/{ACTION}", params={"overwrite": "true"}, json=body
            )
        assert response.status_code == 200, response.text

    def state(self, op: str, **params: Any) -> Any:
        """What the action returned for `op` (it returns the library's errors as `failed`)."""
        with self.client() as client:
            response = client.post(
                f"/api/v1/namespaces/_/actions/{ACTION}",
                params={"blocking": "true", "result": "true"},
                json={"op": op, **params},
            )
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="module")
def standalone() -> Iterator[Standalone]:
    standalone = Standalone()
    try:
        yield standalone
    finally:
        standalone.remove()


@pytest.fixture(scope="module")
def homerun(standalone: Standalone) -> Homerun:
    """This module's standalone (which a test restarts)."""
    return standalone.start()


@pytest.fixture(scope="module")
def code(node: str) -> bytes:
    return action_zip()


@pytest.fixture(scope="module")
def guest(homerun: Homerun, code: bytes) -> Namespace:
    namespace = Namespace(homerun.apihost, homerun.auth, "guest")
    namespace.deploy(code)
    return namespace


@pytest.fixture(scope="module")
def other(homerun: Homerun, code: bytes) -> Namespace:
    """A second namespace, made with the operator's token and API key."""
    api_key = re.search(r"operator API key\s+(\S+)", homerun.banner)
    assert api_key is not None, homerun.banner
    headers = {"Authorization": f"Bearer {homerun.operator_token}", "X-Api-Key": api_key[1]}
    response = httpx.post(
        f"{homerun.apihost}/runtime/admin/namespaces/acme/state", headers=headers, timeout=30
    )
    assert response.status_code == 200, response.text
    created = response.json()
    namespace = Namespace(homerun.apihost, created["auth"], created["name"])
    namespace.deploy(code)
    return namespace


def test_the_action_environment_names_the_endpoint(guest: Namespace, homerun: Homerun) -> None:
    env = guest.state("env")
    port = homerun.apihost.rsplit(":", 1)[1]
    assert str(env.get("endpoint")).endswith(f":{port}/state"), env


@pytest.mark.parametrize("lib", LIBS)
def test_store_read_list_and_delete(guest: Namespace, lib: int) -> None:
    guest.state("deleteAll", lib=lib, match="*")  # v4: every key; v5: every key matching '*'
    assert guest.state("any", lib=lib) == {"any": False}
    for key, value in (("user.1", "ada"), ("user.2", "grace"), ("order.1", '{"n": 1}')):
        assert guest.state("put", lib=lib, key=key, value=value, ttl=600) == {"key": key}

    got = guest.state("get", lib=lib, key="order.1")["got"]
    assert got["value"] == '{"n": 1}'
    expires = datetime.fromisoformat(got["expiration"]).timestamp()
    assert 590 < expires - time.time() < 610, got
    assert guest.state("get", lib=lib, key="user.3") == {"got": None}

    assert guest.state("list", lib=lib) == {"keys": ["order.1", "user.1", "user.2"]}
    assert guest.state("list", lib=lib, match="user.*") == {"keys": ["user.1", "user.2"]}
    assert guest.state("any", lib=lib) == {"any": True}
    stats = guest.state("stats", lib=lib)["stats"]
    assert stats == {"keys": 3, "bytesKeys": 19, "bytesValues": 16}, stats

    assert guest.state("delete", lib=lib, key="user.1") == {"deleted": "user.1"}
    assert guest.state("delete", lib=lib, key="user.1") == {"deleted": None}
    assert guest.state("get", lib=lib, key="user.1") == {"got": None}

    bad = guest.state("put", lib=lib, key="not a key", value="v")["failed"]
    assert bad["code"] == "ERROR_BAD_ARGUMENT", bad
    if lib == 5:
        assert guest.state("deleteAll", lib=lib, match="user.*") == {"deleted": {"keys": 1}}
        assert guest.state("list", lib=lib) == {"keys": ["order.1"]}
    else:
        assert guest.state("deleteAll", lib=lib) == {"deleted": True}
        assert guest.state("any", lib=lib) == {"any": False}


def test_a_value_too_large_is_refused(guest: Namespace) -> None:
    assert guest.state("put", key="big", size=1024 * 1024) == {"key": "big"}
    assert guest.state("get", key="big", length=True) == {"length": 1024 * 1024}
    failed = guest.state("put", key="bigger", size=1024 * 1024 + 1)["failed"]
    assert failed["code"] == "ERROR_PAYLOAD_TOO_LARGE", failed
    assert guest.state("get", key="bigger") == {"got": None}


def test_keys_expire_with_their_ttl(guest: Namespace) -> None:
    assert guest.state("put", key="brief", value="soon gone", ttl=1) == {"key": "brief"}
    assert guest.state("put", key="lasting", value="here", ttl=600) == {"key": "lasting"}
    deadline = time.monotonic() + 30
    while guest.state("get", key="brief") != {"got": None}:
        assert time.monotonic() < deadline, "a key with a TTL of 1 s is still there after 30 s"
        time.sleep(0.5)
    assert guest.state("get", key="lasting")["got"]["value"] == "here"


def test_another_namespace_cannot_read_the_keys(guest: Namespace, other: Namespace) -> None:
    guest.state("put", key="secret", value="guest's")
    assert other.state("get", key="secret") == {"got": None}  # its own container
    other.state("put", key="secret", value="acme's")
    assert guest.state("get", key="secret")["got"]["value"] == "guest's"
    assert other.state("get", key="secret")["got"]["value"] == "acme's"

    for op in ("get", "put", "delete", "list"):
        refused = other.state(op, namespace="guest", key="secret", value="overwritten")["failed"]
        assert refused["code"] == "ERROR_BAD_CREDENTIALS", (op, refused)
    assert guest.state("get", key="secret")["got"]["value"] == "guest's"


def test_aio_app_state(aio: Path, homerun: Homerun, guest: Namespace, tmp_path: Path) -> None:
    cli = AioCli(aio, homerun.apihost, homerun.auth, tmp_path)
    cli.env["AIO_STATE_ENDPOINT"] = homerun.apihost + "/state"
    assert cli("app", "state", "put", "cli.greeting", "hello from aio", "--ttl", "600") == (
        "cli.greeting"
    )
    assert cli("app", "state", "get", "cli.greeting") == "hello from aio"
    assert guest.state("get", key="cli.greeting")["got"]["value"] == "hello from aio"
    cli("app", "state", "put", "cli.other", "x")
    assert sorted(cli.json("app", "state", "list", "--match", "cli.*", "--json")) == [
        "cli.greeting", "cli.other",
    ]  # fmt: skip
    stats = cli.json("app", "state", "stats", "--json")
    assert stats["keys"] >= 2, stats
    cli("app", "state", "delete", "cli.greeting")
    assert "key does not exist" in cli.fails("app", "state", "get", "cli.greeting")
    cli("app", "state", "delete", "--match", "cli.*", "--force")
    assert cli.json("app", "state", "list", "--match", "cli.*", "--json") == []


def test_a_key_survives_a_restart(
    guest: Namespace, standalone: Standalone, homerun: Homerun
) -> None:
    """Last: it restarts the module's standalone (same data directory and port)."""
    assert guest.state("put", key="durable", value="kept", ttl=3600) == {"key": "durable"}
    standalone.stop()
    again = standalone.start()
    assert again.auth == homerun.auth
    assert guest.state("get", key="durable")["got"]["value"] == "kept"
    assert guest.state("list", match="dura*") == {"keys": ["durable"]}
