"""Log forwarding settings, as `aio rt namespace log-forwarding` reads and writes them."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

NewNamespace = Callable[[str, str], Awaitable[dict[str, Any]]]


def basic(auth: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}


@pytest.mark.parametrize("prefix", ["", "/runtime"])
async def test_settings_round_trip(
    client: httpx.AsyncClient, create_namespace: NewNamespace, prefix: str
) -> None:
    namespace = await create_namespace("acme", "int1")
    headers = basic(namespace["auth"])
    url = f"{prefix}/runtime/namespaces/acme-int1/logForwarding"
    default = await client.get(url, headers=headers)
    assert default.status_code == 200 and default.json() == {"adobe_io_runtime": {}}
    splunk = {"splunk_hec": {"host": "h", "port": "8088", "index": "i", "hec_token": "t"}}
    assert (await client.put(url, json=splunk, headers=headers)).json() == splunk
    assert (await client.get(url, headers=headers)).json() == splunk
    errors = (await client.get(url + "/errors", headers=headers)).json()
    assert errors["destination"] == "splunk_hec" and len(errors["errors"]) == 1
    back = await client.put(url, json={"adobe_io_runtime": {}}, headers=headers)
    assert back.json() == {"adobe_io_runtime": {}}
    assert (await client.get(url + "/errors", headers=headers)).json() == {
        "destination": "adobe_io_runtime", "errors": [],
    }  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [
        {"nowhere": {}},
        {"splunk_hec": {"host": "h"}},
        {"adobe_io_runtime": {}, "new_relic": {}},
        {"new_relic": "x"},
        [],
    ],
)
async def test_bad_settings_are_rejected(
    client: httpx.AsyncClient, create_namespace: NewNamespace, body: Any
) -> None:
    namespace = await create_namespace("acme", "int1")
    url = "/runtime/namespaces/acme-int1/logForwarding"
    response = await client.put(url, json=body, headers=basic(namespace["auth"]))
    assert response.status_code == 400, response.text


async def test_another_namespace_is_forbidden(
    client: httpx.AsyncClient, create_namespace: NewNamespace
) -> None:
    mine = await create_namespace("acme", "int1")
    await create_namespace("other", "int1")
    url = "/runtime/namespaces/other-int1/logForwarding"
    assert (await client.get(url, headers=basic(mine["auth"]))).status_code == 403
    assert (await client.get(url)).status_code == 401
