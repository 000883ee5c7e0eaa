"""Actions that rules invoke count against the namespace's invocations per minute (§9, §10.1):
a throttled one is logged as failed in the trigger activation, like a refused invoke."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from controller.settings import Settings
from tests.conftest import Engine
from tests.controller.api.openwhisk_triggers.conftest import Caller, basic


@pytest.fixture
def sandbox_kind() -> str:
    return "process"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    base = Settings(data_dir=tmp_path, database_url=database_url)
    limits = base.limits.model_copy(update={"invocations_per_minute": 1})
    return base.model_copy(update={"limits": limits})


async def test_a_throttled_rule_is_logged_as_an_application_error(engine: Engine) -> None:
    response = await engine.client.get(
        "/runtime/admin/namespaces/acme/int1", headers=engine.headers
    )
    namespace = response.json()
    ow = Caller(engine.client, namespace["name"], basic(namespace["auth"]))
    await ow.action("a")
    await ow.trigger("t")
    await ow.rule("r1", "/_/t", "/_/a")
    await ow.rule("r2", "/_/t", "/_/a")
    while time.time() % 60 > 50:  # both invocations must fall in one calendar minute
        await asyncio.sleep(1)

    fired = await ow.post("triggers", "t", {})

    assert fired.status_code == 202, fired.text
    found = await engine.activation(fired.json()["activationId"])
    assert found is not None
    lines = [json.loads(line) for line in found.logs]
    assert [line["statusCode"] for line in lines] == [0, 1]
    assert lines[1] == {
        "statusCode": 1,
        "success": False,
        "error": "Too many requests in the last minute (count: 2, allowed: 1).",
        "rule": f"{ow.namespace}/r2",
        "action": f"{ow.namespace}/a",
    }
